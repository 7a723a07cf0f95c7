"""AttentionMap.received(weights) = Σ_i w_i·A[i, :] and row_mass, on both routes (the swapped
flash-kernel call and the row blocks), against weights computed here with a plain softmax."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.functional.bias import AttentionBias
from attnlab.inspection import attention_map
from attnlab.inspection.attention_map import AttentionMap


def oracle(q, k, scale, visible, key_bias, sinks):
    """Weights (B, H, Lq, Lk) in float64: softmax over the visible keys (+ a sink logit)."""
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    scores = (q.double() @ k.double().transpose(-2, -1)) * scale + key_bias.double()
    scores = scores.masked_fill(~visible, -math.inf)
    if sinks is not None:  # one more logit per head that takes mass and has no key
        sink = sinks.double().view(1, -1, 1, 1).expand(*scores.shape[:3], 1)
        w = torch.softmax(torch.cat((scores, sink), -1), -1)[..., :-1]
    else:
        w = torch.softmax(scores, -1)
    return torch.nan_to_num(w, nan=0.0)  # rows that see no key: 0


@st.composite
def case(draw):
    return {
        "b": draw(st.integers(1, 2)), "h_kv": draw(st.integers(1, 2)),
        "groups": draw(st.integers(1, 2)), "n": draw(st.integers(1, 14)),
        "causal": draw(st.booleans()), "padding": draw(st.booleans()),
        "key_mask": draw(st.sampled_from([None, "bool", "float"])),
        "sinks": draw(st.booleans()), "seed": draw(st.integers(0, 2**31 - 1)),
    }  # fmt: skip


def map_and_weights(c):
    """An AttentionMap built from a case (as a kernel would have returned lse) and the weights
    (B, H, n, n) the oracle gives for it."""
    g = torch.Generator().manual_seed(c["seed"])
    B, H_kv, n, d = c["b"], c["h_kv"], c["n"], 4
    H = H_kv * c["groups"]
    q, k = torch.randn(B, H, n, d, generator=g), torch.randn(B, H_kv, n, d, generator=g)
    scale = d**-0.5
    visible = torch.ones(B, H, n, n, dtype=torch.bool)
    if c["causal"]:
        visible &= torch.ones(n, n, dtype=torch.bool).tril()
    padding = None
    if c["padding"]:
        padding = torch.rand(B, n, generator=g) > 0.3
        padding[0] = False  # one text with every key padded: its rows see nothing
        visible &= padding[:, None, None, :]
    key_bias, mask = torch.zeros(B, 1, 1, n), None
    if c["key_mask"] == "bool":
        mask = torch.rand(B, 1, 1, n, generator=g) > 0.2
        visible &= mask
    elif c["key_mask"] == "float":
        mask = torch.randn(B, 1, 1, n, generator=g)
        key_bias = mask
    sinks = torch.randn(H, generator=g) if c["sinks"] else None
    expected = oracle(q, k, scale, visible, key_bias, sinks)  # (B, H, n, n)
    # The lse a kernel returns: over visible keys (+ the sink), +inf for rows that see none.
    scores = q.double() @ k.repeat_interleave(c["groups"], 1).double().transpose(-2, -1)
    logits = (scores * scale + key_bias).masked_fill(~visible, -math.inf)
    lse = logits.logsumexp(-1)
    if sinks is not None:
        lse = torch.logaddexp(lse, sinks.double().view(1, H, 1))
    lse = torch.where(torch.isfinite(lse), lse, math.inf).float()
    bias = AttentionBias(n, n, mask=mask, causal=c["causal"], attention_mask=padding)
    amap = AttentionMap(q=q, k=k, lse=lse, scale=scale, bias=bias, sinks=sinks)
    return amap, expected, g


@settings(max_examples=60, deadline=None)
@given(case())
def test_received_with_weights_equals_the_weighted_column_sums(c):
    amap, expected, g = map_and_weights(c)
    B, H, n, _ = amap.shape
    weights = torch.rand(B, H, n, generator=g).double()
    weights[..., ::3] = 0.0  # rows that do not count
    want = (weights[..., None] * expected).sum(2)
    fast = attention_map._received_by_kernel(amap, weights.float())
    assert fast is not None  # every case here is one the kernel route takes
    tol = {"atol": 1e-5, "rtol": 1e-4}
    torch.testing.assert_close(fast.double(), want, **tol)
    original = attention_map._received_by_kernel
    try:  # the row-block route on the same map
        attention_map._received_by_kernel = lambda amap, weights: None
        blocked = amap.received(weights.float())
        unweighted = amap.received()
    finally:
        attention_map._received_by_kernel = original
    torch.testing.assert_close(blocked.double(), want, **tol)
    torch.testing.assert_close(unweighted.double(), expected.sum(2), **tol)
    torch.testing.assert_close(amap.received().double(), expected.sum(2), **tol)
    torch.testing.assert_close(amap.row_mass().double(), expected.sum(-1), **tol)


def test_negative_weights_and_a_window_take_the_row_blocks():
    q, k = torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 4)
    lse = (q @ k.transpose(-2, -1) * 0.5).logsumexp(-1)
    amap = AttentionMap(q=q, k=k, lse=lse, scale=0.5)
    weights = torch.randn(1, 2, 6)
    assert attention_map._received_by_kernel(amap, weights) is None  # log of a negative
    want = (weights[..., None] * torch.softmax(q @ k.transpose(-2, -1) * 0.5, -1)).sum(2)
    torch.testing.assert_close(amap.received(weights), want, atol=1e-6, rtol=1e-5)
    windowed = AttentionMap(q=q, k=k, lse=lse, scale=0.5,
                            bias=AttentionBias(6, 6, causal=True, window=2))  # fmt: skip
    assert attention_map._received_by_kernel(windowed, None) is None


def test_sinks_survive_save_and_load(tmp_path):
    case = {"b": 1, "h_kv": 2, "groups": 1, "n": 5, "causal": True, "padding": False,
            "key_mask": None, "sinks": True, "seed": 3}  # fmt: skip
    amap, expected, _ = map_and_weights(case)
    loaded = AttentionMap.load(amap.save(tmp_path / "map.safetensors"))
    torch.testing.assert_close(loaded.sinks, amap.sinks)
    torch.testing.assert_close(loaded.row_mass().double(), expected.sum(-1), atol=1e-6, rtol=0)
