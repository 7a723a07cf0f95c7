"""Capture during generation with a KV cache: one map per layer whose rows are the steps, each
step's row equal to the eager model's weights at that step; tokens unchanged."""

from __future__ import annotations

import pytest
import torch

import attnlab
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT

from .hf_zoo import ZOO

GENERATED = 5


def generate_kwargs(kind: str) -> dict:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 90, (2, 6), generator=g)
    mask = torch.ones(2, 6, dtype=torch.long)
    if kind == "decoder":
        mask[0, :2] = 0  # left padding, as batched generation of decoders needs
    return {"input_ids": ids, "attention_mask": mask, "max_new_tokens": GENERATED,
            "min_new_tokens": GENERATED, "do_sample": False, "pad_token_id": 0}  # fmt: skip


@pytest.mark.parametrize("name", ["llama", "mistral", "gemma2", "gpt2", "bart", "t5"])
def test_generation_maps_equal_eager_at_every_step(name: str) -> None:
    arch = ZOO[name]
    kwargs = generate_kwargs(arch.kind)
    model = arch.build()
    with torch.no_grad():
        plain = model.generate(**kwargs)
        with attnlab.capture(model) as maps:
            tokens = model.generate(**kwargs)
        eager = arch.build()
        eager.set_attn_implementation("eager")
        ref = eager.generate(**kwargs, output_attentions=True, return_dict_in_generate=True)
    assert torch.equal(tokens, plain)
    assert torch.equal(ref.sequences, plain)
    seq2seq = arch.kind == "seq2seq"
    per_step = ref.decoder_attentions if seq2seq else ref.attentions
    real = kwargs["attention_mask"].bool()
    for layer, name_ in enumerate(maps.of_role("decoder" if seq2seq else "self")):
        joined = maps[name_].rows()  # (B, H, rows, keys)
        rows = sum(step[layer].shape[2] for step in per_step)
        assert joined.shape[2:] == (rows, rows), name_
        r0 = 0
        for t, step in enumerate(per_step):
            want = step[layer]  # (B, H, Lq, Lk): Lk is the cache (a sliding layer's window)
            lq, lk = want.shape[2:]
            end = r0 + lq
            got = joined[:, :, r0:end, end - lk : end]
            if t == 0 and not seq2seq:  # padding queries: eager uniform, attnlab 0
                keep = real[:, None, :, None].expand_as(got)
                got, want = got[keep], want[keep]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=f"{name_} step {t}")
            hidden = joined[:, :, r0:end, : end - lk]  # keys outside the window: weight 0
            assert not hidden.any() or t == 0
            r0 = end
    if seq2seq:
        for layer, name_ in enumerate(maps.of_role("cross")):
            joined = maps[name_].rows()
            want = torch.cat([step[layer] for step in ref.cross_attentions], dim=2)
            torch.testing.assert_close(joined, want, rtol=0, atol=1e-5, msg=name_)


def test_attnlab_gpt_generation_rows_equal_one_forward_over_the_whole_text() -> None:
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=40, max_len=32, n_layers=2, n_heads=4, d_model=32)).eval()
    prompt = torch.randint(0, 40, (2, 5))
    with attnlab.capture(gpt) as maps:
        ids = gpt.generate(prompt, 6, temperature=0.0)
    with torch.no_grad(), attnlab.capture(gpt) as whole:
        gpt(ids[:, :-1])  # every token that was fed, in one causal forward
    for name in whole:
        torch.testing.assert_close(maps[name].rows(), whole[name].rows(), rtol=0, atol=1e-6)
        assert len(maps.steps(name)) == 6


def test_unrelated_forwards_are_not_joined() -> None:
    arch = ZOO["llama"]
    model = arch.build()
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(torch.randint(3, 90, (1, 6)))
        model(torch.randint(3, 90, (1, 4)))
    amap = maps["model.layers.0.self_attn"]
    assert amap.shape == (1, 4, 4, 4)
    assert len(maps.steps("model.layers.0.self_attn")) == 1


def test_keys_are_stored_once_across_steps() -> None:
    arch = ZOO["llama"]
    model = arch.build()
    with torch.no_grad(), attnlab.capture(model) as maps:
        model.generate(**generate_kwargs("decoder"))
    steps = maps.steps("model.layers.0.self_attn")
    storages = {s.k.untyped_storage().data_ptr() for s in steps}
    assert len(storages) <= 3  # one growing buffer (doubling), not one copy per step


def test_a_cached_call_on_another_text_starts_a_new_chain_and_warns() -> None:
    """A cached call whose cache holds another text's keys must not join the chain."""
    model = ZOO["llama"].build()
    g = torch.Generator().manual_seed(7)
    first, second = (torch.randint(3, 90, (1, 5), generator=g) for _ in range(2))
    warns = pytest.warns(UserWarning, match="could not join")
    with torch.no_grad(), warns, attnlab.capture(model) as maps:
        cache = model(first, use_cache=True).cache  # chain: first's keys
        model(second)  # a new chain: second's keys
        model(first[:, :1], cache=cache)  # cached on first's keys: not second's chain
    assert maps["model.layers.0.self_attn"].shape == (1, 4, 1, 6)
    assert len(maps.steps("model.layers.0.self_attn")) == 1


def test_weights_shared_across_layers_get_one_map_per_call() -> None:
    import transformers as tf

    torch.manual_seed(0)
    config = tf.AlbertConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                             num_attention_heads=4, intermediate_size=48)  # fmt: skip
    model = tf.AlbertModel(config).eval()
    ids = torch.randint(0, 50, (1, 5))
    with torch.no_grad():
        with attnlab.capture(model) as maps:
            model(ids)
        model.set_attn_implementation("eager")
        eager = model(ids, output_attentions=True).attentions
    name = "encoder.albert_layer_groups.0.albert_layers.0.attention"
    assert list(maps) == [name, f"{name}#1", f"{name}#2"]
    for layer, want in zip(maps.values(), eager, strict=True):
        torch.testing.assert_close(layer.rows(), want, rtol=0, atol=1e-5)
