"""Measures against dense references written from the papers' formulas."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import transformers as tf

import attnlab
from attnlab import measures
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT

from ..inspection.test_received import map_and_weights


def tiny_gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = tf.GPT2Config(n_embd=32, n_layer=3, n_head=4, vocab_size=50, n_positions=64)
    return tf.GPT2LMHeadModel(config).eval()


def tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = tf.BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                           intermediate_size=48, vocab_size=50)  # fmt: skip
    return tf.BertModel(config).eval()


def eager_attentions(model: torch.nn.Module, inputs: dict) -> list[np.ndarray]:
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(**inputs, output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
    return [a.double().numpy() for a in out.attentions]


def rollout_reference(attentions: list[np.ndarray], residual: float = 0.5) -> np.ndarray:
    """Abnar & Zuidema: Â = r·I + (1 − r)·mean_h A, R = Â_L ⋯ Â_1 (numpy, float64)."""
    T = attentions[0].shape[-1]
    R = np.stack([np.eye(T)] * attentions[0].shape[0])
    for A in attentions:
        R = (residual * np.eye(T) + (1 - residual) * A.mean(axis=1)) @ R
    return R


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_bert])
def test_rollout_equals_the_dense_formula_with_padding(build) -> None:
    model = build()
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, -3:] = 0  # right padding
    inputs = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(**inputs)
    want = rollout_reference(eager_attentions(model, inputs))
    got = measures.rollout(maps).double().numpy()
    real = mask[1].bool().numpy()
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1][np.ix_(real, real)], want[1][np.ix_(real, real)], atol=1e-5)
    np.testing.assert_allclose(got[0].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("route", ["kernel", "rows"])
@pytest.mark.parametrize("heads", ["mean", 1, "max"])
@pytest.mark.parametrize("kind", ["causal, padded, sinks", "key mask, grouped", "plain"])
def test_streamed_rollout_equals_the_formula_on_sinks_padding_and_masks(
    kind, heads, route, monkeypatch
) -> None:
    """Rows that sum to less than 1 (sinks) or to 0 (padding) are renormalised as the paper's
    Â = norm(r·I + (1 − r)·A) says; three layers; every target of every text; each layer's
    r·Â by the kernel call and by recomputed rows."""
    monkeypatch.setattr(
        sys.modules["attnlab.measures.rollout"], "_FEW_ROWS", 0 if route == "kernel" else 10**9
    )
    case = {"b": 2, "h_kv": 2, "groups": 1, "n": 9, "causal": False, "padding": False,
            "key_mask": None, "sinks": False}  # fmt: skip
    case |= {"causal, padded, sinks": {"causal": True, "padding": True, "sinks": True},
             "key mask, grouped": {"key_mask": "float", "groups": 2},
             "plain": {}}[kind]  # fmt: skip
    layers = [map_and_weights(case | {"seed": seed}) for seed in range(3)]
    R = torch.eye(9, dtype=torch.float64).expand(2, 9, 9)
    for _, weights, _ in layers:
        A = (
            weights.mean(1)
            if heads == "mean"
            else weights.amax(1)
            if heads == "max"
            else weights[:, heads]
        )
        mixed = 0.5 * torch.eye(9, dtype=torch.float64) + 0.5 * A
        R = (mixed / mixed.sum(-1, keepdim=True)) @ R
    maps = [amap for amap, _, _ in layers]
    torch.testing.assert_close(measures.rollout(maps, heads=heads).double(), R, atol=1e-5, rtol=0)
    for target in range(9):
        row = measures.rollout(maps, target=target, heads=heads)
        torch.testing.assert_close(row.double(), R[:, target], atol=1e-5, rtol=0)


@pytest.mark.parametrize("target", [0, 4, -1])
def test_streamed_rollout_of_one_target_equals_the_full_rows(target: int) -> None:
    model = tiny_bert()
    ids = torch.randint(0, 50, (1, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(input_ids=ids)
    full = measures.rollout(maps, heads="max")
    row = measures.rollout(maps, target=target, heads="max")
    torch.testing.assert_close(row, full[:, target], rtol=0, atol=1e-5)


def test_grad_attention_agrees_between_hugging_face_eager_and_attnlab_hook_pattern() -> None:
    """Two independent routes to the same gradients: HF GPT-2's eager weights, and the same
    weights converted to an attnlab GPT read through hook_pattern."""
    hf = tiny_gpt2()
    ours = GPT.from_hf(hf).eval()
    ids = torch.randint(0, 50, (1, 8), generator=torch.Generator().manual_seed(3))
    got = measures.grad_attention(ours, {"input_ids": ids}, lambda out: out.logits[0, -1, 7])
    want = measures.grad_attention(hf, {"input_ids": ids}, lambda out: out.logits[0, -1, 7])
    assert hf.config._attn_implementation == "sdpa"
    for (name_a, a), (name_b, b) in zip(got.items(), want.items(), strict=True):
        assert a.shape == b.shape == (1, 4, 8, 8), (name_a, name_b)
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_head_effects_equal_one_ablation_at_a_time() -> None:
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=2, n_heads=4, d_model=16)).eval()
    ids = torch.randint(0, 30, (2, 7), generator=torch.Generator().manual_seed(4))

    def output(out):
        return out.logits[:, -1, 3].sum()

    for mode in ("zero", "mean"):
        got = measures.head_effects(gpt, {"input_ids": ids}, output, mode=mode)
        with torch.no_grad():
            base = output(gpt(ids))
            want = torch.zeros(2, 4)
            for layer in range(2):
                for head in range(4):
                    with attnlab.ablate_heads(gpt, {layer: [head]}, mode=mode):
                        want[layer, head] = output(gpt(ids)) - base
        assert want.abs().max() > 1e-4
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_head_effects_on_a_hugging_face_model_equal_editing_its_output_projection() -> None:
    model = tiny_gpt2()
    ids = torch.randint(0, 50, (1, 6), generator=torch.Generator().manual_seed(5))

    def output(out):
        return out.logits[0, -1].norm()

    got = measures.head_effects(model, {"input_ids": ids}, output)
    want = torch.zeros(3, 4)
    with torch.no_grad():
        base = output(model(ids))
        for layer in range(3):
            proj = model.transformer.h[layer].attn.c_proj
            for head in range(4):

                def zero(_m, args, head=head):
                    x = args[0].clone()
                    x[..., head * 8 : (head + 1) * 8] = 0
                    return (x,)

                handle = proj.register_forward_pre_hook(zero)
                want[layer, head] = output(model(ids)) - base
                handle.remove()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_clear_errors() -> None:
    model = tiny_bert()
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(input_ids=torch.randint(0, 50, (1, 5)))
    with pytest.raises(ValueError, match=r"target must be a position in \[0, 5\)"):
        measures.rollout(maps, target=5)
    with pytest.raises(ValueError, match="heads must be one of"):
        measures.rollout(maps, heads="median")
    with pytest.raises(ValueError, match="scalar tensor"):
        measures.head_effects(model, {"input_ids": torch.zeros(1, 5, dtype=torch.long)},
                              lambda out: out.last_hidden_state)  # fmt: skip


def test_grad_attention_is_weight_times_finite_difference_slope() -> None:
    """G = A · ∂out/∂A, checked against nudging one weight through hook_pattern (float64)."""
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=2, n_heads=2, d_model=8))
    gpt = gpt.double().eval()
    ids = torch.randint(0, 30, (1, 6), generator=torch.Generator().manual_seed(6))

    def output(out):
        return out.logits[0, -1, 5]

    grads = measures.grad_attention(gpt, {"input_ids": ids}, output)
    layer, head, i, j, eps = 1, 1, 5, 2, 1e-6
    seen = {}

    def nudge(_m, _inputs, pattern):
        seen["A"] = pattern[0, head, i, j].item()
        pattern = pattern.clone()
        pattern[0, head, i, j] += eps
        return pattern

    with torch.no_grad():
        base = output(gpt(ids)).item()
        handle = gpt.layers[layer].self_attn.hook_pattern.register_forward_hook(nudge)
        moved = output(gpt(ids)).item()
        handle.remove()
    slope = (moved - base) / eps
    got = grads[f"layers.{layer}.self_attn"][0, head, i, j].item()
    assert abs(slope) > 1e-6
    assert got == pytest.approx(seen["A"] * slope, rel=1e-4)


def test_report_measures_on_the_real_minilm() -> None:
    report = attnlab.inspect("The animal didn't cross the street because it was tired")
    T = len(report.tokens)
    full = report.rollout()
    assert full.shape == (T, T)
    torch.testing.assert_close(full.sum(-1), torch.ones(T), rtol=0, atol=1e-5)
    torch.testing.assert_close(report.rollout(target="it"), full[report.position("it")],
                               rtol=0, atol=1e-5)  # fmt: skip
    assert report.value_norms().shape == (6, 12, T, T)
    assert report.value_norms(layer=2, combine_heads=True).shape == (T, T)
    it, animal = report.position("it"), report.position("animal")

    def output(out):  # how much "it"'s final vector points along "animal"'s
        hidden = out.last_hidden_state[0]
        return hidden[it] @ hidden[animal]

    assert report.grad_attention(output).shape == (6, 12, T, T)
    effects = report.head_effects(output)
    assert effects.shape == (6, 12) and effects.abs().max() > 0


def test_rollout_residual_share_and_max_reduction_follow_the_formula() -> None:
    model = tiny_bert()
    inputs = {"input_ids": torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(8))}
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(**inputs)
    attentions = eager_attentions(model, inputs)
    T = 7
    R = np.eye(T)[None]
    for A in attentions:  # Â = norm(0.2·I + 0.8·max_h A)
        mixed = 0.2 * np.eye(T) + 0.8 * A.max(axis=1)
        R = (mixed / mixed.sum(-1, keepdims=True)) @ R
    got = measures.rollout(maps, heads="max", residual=0.2).double().numpy()
    np.testing.assert_allclose(got, R, atol=1e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
