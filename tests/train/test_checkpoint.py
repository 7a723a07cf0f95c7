"""Training checkpoints: a model checkpoint plus optimizer state; the previous format still
resumes; optimizer state restored takes its parameters' memory layout again."""

import json

import pytest
import safetensors.torch
import torch
from torch import nn

from attnlab import GPT, GPTConfig
from attnlab.functional.linear import store_weights_transposed_
from attnlab.models.checkpoint import load_model, restore_model, save_model
from attnlab.train.checkpoint import load_training, restore_optimizer, save_training
from attnlab.train.config import TrainConfig


def test_fused_adamw_resumes_exactly_on_transposed_weights():
    torch.manual_seed(0)
    layer = store_weights_transposed_(nn.Linear(6, 4))
    twin = store_weights_transposed_(nn.Linear(6, 4))
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(5, 6)

    def step(model, opt):
        model(x).square().sum().backward()
        opt.step()
        opt.zero_grad()

    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, fused=True)
    step(layer, opt)
    saved = opt.state_dict()  # as written to disk: every tensor contiguous
    saved = {**saved, "state": {i: {k: v.contiguous().clone() for k, v in s.items()}
                                for i, s in saved["state"].items()}}  # fmt: skip
    twin.load_state_dict(layer.state_dict())
    resumed = torch.optim.AdamW(twin.parameters(), lr=0.1, fused=True)
    restore_optimizer(resumed, saved)
    assert resumed.state[twin.weight]["exp_avg"].stride() == twin.weight.stride()
    for _ in range(2):
        step(layer, opt)
        step(twin, resumed)
    torch.testing.assert_close(twin.weight, layer.weight)


def tiny_run():
    """A GPT and its AdamW after two steps, and a function that takes one more step."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, max_len=8, n_layers=1, n_heads=2, d_model=8))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    ids = torch.randint(0, 20, (2, 8))

    def step(m, o):
        m(ids, targets=ids).loss.backward()
        o.step()
        o.zero_grad()

    for _ in range(2):
        step(model, opt)
    return model, opt, step


CONFIG = TrainConfig(n_layers=1, n_heads=2, d_model=8, d_ff=32, context=8)


def resume_and_compare(path, model, opt, step):
    state = load_training(path, expected=CONFIG)
    assert (state.step, state.config, state.tokenizer_json) == (2, CONFIG, '{"kind": "char"}')
    torch.manual_seed(1)  # other initial weights: everything must come from the file
    twin = GPT(model.config)
    restore_model(twin, state.model_state)
    twin_opt = torch.optim.AdamW(twin.parameters(), lr=0.01)
    restore_optimizer(twin_opt, state.optimizer_state)
    step(model, opt)
    step(twin, twin_opt)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_training_checkpoint_resumes_exactly_and_is_a_model_checkpoint(tmp_path):
    model, opt, step = tiny_run()
    path = save_training(tmp_path / "c.safetensors", model, opt, 2, CONFIG, '{"kind": "char"}')
    loaded = load_model(path)  # the model alone, as from save_model
    ids = torch.randint(0, 20, (1, 5))
    assert torch.equal(loaded(ids).logits, model.eval()(ids).logits)
    model.train()
    resume_and_compare(path, model, opt, step)


def test_a_training_checkpoint_of_the_previous_format_still_resumes(tmp_path):
    model, opt, step = tiny_run()
    # attnlab.training/1, written here as it was: model/<name> (the tied lm_head left out),
    # optim/<param index>/<key>, and the fields as separate metadata entries
    tensors = {f"model/{k}": v.contiguous() for k, v in model.state_dict().items()
               if k != "lm_head.weight"}  # fmt: skip
    saved = opt.state_dict()
    for index, state in saved["state"].items():
        for key, value in state.items():
            tensors[f"optim/{index}/{key}"] = value.contiguous()
    meta = {"format": "attnlab.training/1", "step": "2", "config": json.dumps(CONFIG.to_dict()),
            "tokenizer": '{"kind": "char"}', "param_groups": json.dumps(saved["param_groups"])}  # fmt: skip
    path = tmp_path / "old.safetensors"
    safetensors.torch.save_file(tensors, path, metadata=meta)
    resume_and_compare(path, model, opt, step)
    with pytest.raises(ValueError, match="not an attnlab model checkpoint"):
        load_model(path)


def test_a_model_checkpoint_is_not_a_training_checkpoint(tmp_path):
    model, _, _ = tiny_run()
    save_model(model, tmp_path)
    with pytest.raises(ValueError, match="not an attnlab training checkpoint .*without training"):
        load_training(tmp_path / "model.safetensors")
