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


def rewrite(path, *, training=None, metadata=None, tensors=None):
    """Rewrite the checkpoint at ``path`` with its training JSON, metadata or tensors changed."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta, found = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if training is not None:
        meta["training"] = json.dumps(training(json.loads(meta["training"])))
    meta = metadata(meta) if metadata else meta
    safetensors.torch.save_file(tensors(found) if tensors else found, path, metadata=meta)


@pytest.fixture
def saved(tmp_path):
    model, opt, _ = tiny_run()
    return save_training(tmp_path / "c.safetensors", model, opt, 2, CONFIG, '{"kind": "char"}')


def without(data, key):
    return {k: v for k, v in data.items() if k != key}


def test_training_metadata_lacking_the_config_is_named(saved):
    rewrite(saved, training=lambda t: without(t, "config"))
    with pytest.raises(ValueError, match=r"the training metadata lacks \['config'\] \(written by"):
        load_training(saved)


def test_model_metadata_lacking_the_config_is_named(saved):
    rewrite(saved, metadata=lambda m: without(m, "config"))
    with pytest.raises(ValueError, match="lacks the metadata entry 'config' .written by attnlab"):
        load_model(saved)


def test_an_unknown_training_config_field_names_it_and_the_versions(saved):
    rewrite(saved, training=lambda t: {**t, "config": {**t["config"], "rope_base": 10000}},
            metadata=lambda m: {**m, "attnlab_version": "9.0.0"})  # fmt: skip
    message = r"unknown training config field\(s\) \['rope_base'\] \(written by attnlab 9.0.0; "
    with pytest.raises(ValueError, match=message + "this is attnlab 0"):
        load_training(saved)


def test_an_unknown_model_config_field_names_it_and_the_versions(saved):
    def newer(meta):
        config = {**json.loads(meta["config"]), "rope_base": 10000}
        return {**without(meta, "attnlab_version"), "config": json.dumps(config)}

    rewrite(saved, metadata=newer)
    message = r"unknown GPTConfig fields: \['rope_base'\].*written by attnlab before 0.1.0"
    with pytest.raises(ValueError, match=message):
        load_model(saved)


def test_a_negative_step_is_refused(saved):
    rewrite(saved, training=lambda t: {**t, "step": -3})
    with pytest.raises(ValueError, match="step must be an integer >= 0; got -3"):
        load_training(saved)


def test_a_checkpoint_config_out_of_range_is_refused_naming_the_file(saved):
    rewrite(saved, training=lambda t: {**t, "config": {**t["config"], "lr": -1}})
    with pytest.raises(ValueError, match=r"c.safetensors: training config: lr must be"):
        load_training(saved)


def test_a_model_tensor_of_the_wrong_shape_names_it_and_both_shapes(saved):
    rewrite(saved, tensors=lambda t: {**t, "layers.0.ff.linear1.weight": torch.zeros(3, 3)})
    message = r"layers.0.ff.linear1.weight has shape \(3, 3\), the config expects \((32, 8|8, 32)\)"
    with pytest.raises(ValueError, match=message):
        load_model(saved)
    state = load_training(saved)
    with pytest.raises(ValueError, match=f"{saved}: " + message):
        restore_model(GPT(GPTConfig(vocab_size=20, max_len=8, n_layers=1, n_heads=2, d_model=8)),
                      state.model_state, state.path)  # fmt: skip


def test_an_optimizer_tensor_of_the_wrong_shape_names_it_and_both_shapes(saved):
    rewrite(saved, tensors=lambda t: {**t, "optimizer/0/exp_avg": torch.zeros(2, 2)})
    state = load_training(saved)
    model = GPT(GPTConfig(vocab_size=20, max_len=8, n_layers=1, n_heads=2, d_model=8))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    message = r"optimizer/0/exp_avg has shape \(2, 2\), its parameter \(20, 8\)"
    with pytest.raises(ValueError, match=message):
        restore_optimizer(opt, state.optimizer_state, state.path)
