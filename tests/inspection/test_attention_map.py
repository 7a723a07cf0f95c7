"""Every AttentionMap operation equals a dense softmax computed independently here."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import observe, scaled_dot_product_attention
from attnlab.inspection.attention_map import AttentionMap


class Keep(observe.Observer):
    needs_attention = True

    def __init__(self):
        self.calls = []

    def attention(self, module, call):
        self.calls.append(call)


def make_map(q, k, v, mask=None, causal=False):
    keep = Keep()
    with observe.observing(keep):
        scaled_dot_product_attention(q, k, v, mask, causal=causal)
    c = keep.calls[-1]
    return AttentionMap(q=c.q, k=c.k, lse=c.lse, scale=c.scale, bias=c.bias)


def dense_softmax(q, k, mask, causal):
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(q.shape[-1])
    lq, lk = scores.shape[-2:]
    visible = torch.ones(lq, lk, dtype=torch.bool)
    if causal:
        visible = torch.arange(lk)[None, :] <= torch.arange(lq)[:, None] + (lk - lq)
    if mask is not None:
        visible = visible & mask
    scores = scores.masked_fill(~visible, -math.inf)
    w = torch.softmax(scores, -1)
    return torch.nan_to_num(w, nan=0.0).float()


@st.composite
def case(draw):
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    lq = draw(st.integers(1, 12))
    lk = lq if draw(st.booleans()) else draw(st.integers(1, 12))
    causal = draw(st.booleans())
    masked = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return b, h, lq, lk, causal, masked, seed


@settings(max_examples=60, deadline=None)
@given(case())
def test_every_operation_equals_dense_softmax(c):
    b, h, lq, lk, causal, masked, seed = c
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, 8, generator=g) for n in (lq, lk, lk))
    mask = (torch.rand(b, 1, lq, lk, generator=g) > 0.3) if masked else None
    amap = make_map(q, k, v, mask, causal)
    expected = dense_softmax(q, k, mask, causal)  # (B, H, Lq, Lk)
    tol = {"atol": 1e-5, "rtol": 1e-5}
    torch.testing.assert_close(amap.dense(), expected, **tol)
    torch.testing.assert_close(amap.head(h - 1), expected[:, h - 1], **tol)
    torch.testing.assert_close(amap.query(lq - 1), expected[:, :, lq - 1], **tol)
    torch.testing.assert_close(amap.rows(0, (lq + 1) // 2), expected[:, :, : (lq + 1) // 2], **tol)
    kk = min(3, lk)
    values, _ = amap.topk(kk)
    torch.testing.assert_close(values, expected.topk(kk, dim=-1).values, **tol)
    logs = torch.where(expected > 0, expected.log(), torch.zeros(()))
    torch.testing.assert_close(amap.entropy(), -(expected * logs).sum(-1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(amap.mean_over_heads(), expected.mean(1), **tol)
    torch.testing.assert_close(amap.received(), expected.sum(2), atol=1e-4, rtol=1e-4)


def test_pooled_map_is_the_block_average():
    q, k, v = (torch.randn(1, 2, 10, 4) for _ in range(3))
    amap = make_map(q, k, v, causal=True)
    pooled = amap.pooled(4)  # 10 → blocks of 3: sizes 3, 3, 3, 1
    dense = dense_softmax(q, k, None, True)
    expected = torch.stack(
        [torch.stack([dense[..., i:i + 3, j:j + 3].mean((-1, -2)) for j in range(0, 10, 3)], -1)
         for i in range(0, 10, 3)], -2,
    )  # fmt: skip
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)


def test_dense_refuses_before_allocating_too_much():
    q = torch.randn(1, 2, 64, 4)
    amap = make_map(q, q, q)
    with pytest.raises(
        ValueError, match=r"the dense map \(1, 2, 64, 64\) needs 0 MiB, over max_bytes"
    ):
        amap.dense(max_bytes=1000)


def test_out_of_range_head_and_query_are_refused():
    q = torch.randn(1, 2, 5, 4)
    amap = make_map(q, q, q)
    with pytest.raises(ValueError, match=r"head index must lie in \[0, 2\); got 2"):
        amap.head(2)
    with pytest.raises(ValueError, match=r"query index must lie in \[0, 5\); got 7"):
        amap.query(7)


def test_save_and_load_round_trip(tmp_path):
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    amap = make_map(q, k, v, torch.rand(1, 1, 6, 6) > 0.3, causal=True)
    loaded = AttentionMap.load(amap.save(tmp_path / "layer.safetensors"))
    torch.testing.assert_close(loaded.dense(), amap.dense(), atol=0, rtol=0)


def test_load_refuses_other_files(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"q": torch.zeros(1)}, path)  # a pickle
    with pytest.raises(ValueError, match="is not a safetensors AttentionMap file"):
        AttentionMap.load(path)


def test_to_and_cpu_keep_values_close():
    q, k, v = (torch.randn(1, 1, 5, 4) for _ in range(3))
    amap = make_map(q, k, v)
    torch.testing.assert_close(amap.to(torch.float64).dense(), amap.dense().double())
    torch.testing.assert_close(amap.cpu().dense(), amap.dense())
