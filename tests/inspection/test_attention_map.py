"""Every AttentionMap operation equals a dense softmax computed independently here."""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel

from attnlab import MultiHeadAttention, capture, observe, scaled_dot_product_attention
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


DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


def tiny_gpt2_pair(device):
    """A Hugging Face GPT-2 with SDPA attention (captured) and the same weights in eager
    attention (the oracle: its ``output_attentions`` are softmax(QKᵀ/√d)·mask written out)."""
    sizes = {"vocab_size": 50, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 4}
    torch.manual_seed(0)
    sdpa = GPT2LMHeadModel(GPT2Config(**sizes, attn_implementation="sdpa")).eval()
    eager = GPT2LMHeadModel(GPT2Config(**sizes, attn_implementation="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    return sdpa.to(device), eager.to(device)


def pooled_oracle(w, size):
    """Mean of each ceil(L/size)-sized block of (query, key) pairs, by explicit loops."""
    lq, lk = w.shape[-2:]
    fq, fk = -(-lq // size), -(-lk // size)
    return torch.stack(
        [torch.stack([w[..., i:i + fq, j:j + fk].mean((-1, -2)) for j in range(0, lk, fk)], -1)
         for i in range(0, lq, fq)], -2,
    )  # fmt: skip


def entropy_oracle(w):
    return -torch.where(w > 0, w * w.log(), torch.zeros_like(w)).sum(-1)


def assert_map_equals(amap, expected, tol=1e-5):
    """Every slice and reduction of ``amap`` equals the one computed from ``expected`` (B, H,
    Lq, Lk) (float64, independent of attnlab)."""
    B, H, Lq, Lk = expected.shape
    close = functools.partial(torch.testing.assert_close, atol=tol, rtol=tol, check_dtype=False)
    assert amap.shape == (B, H, Lq, Lk)
    got = amap.dense()
    close(got.double().cpu(), expected.cpu())
    close(amap.rows(1, Lq - 1).double().cpu(), expected[:, :, 1 : Lq - 1].cpu())
    close(amap.rows(0, 3, heads=slice(1, 3)).double().cpu(), expected[:, 1:3, :3].cpu())
    close(amap.head(H - 1).double().cpu(), expected[:, H - 1].cpu())
    close(amap.query(-1).double().cpu(), expected[:, :, -1].cpu())
    values, indices = amap.topk(3)
    close(values.double().cpu(), expected.topk(3, dim=-1).values.cpu())
    picked = expected.cpu().gather(-1, indices.cpu().long())  # ties may pick other keys
    close(picked, expected.topk(3, dim=-1).values.cpu())
    close(amap.entropy().double().cpu(), entropy_oracle(expected).cpu(), atol=10 * tol)
    close(amap.pooled(4).double().cpu(), pooled_oracle(expected, 4).cpu())
    close(amap.mean_over_heads().double().cpu(), expected.mean(1).cpu())
    close(amap.received().double().cpu(), expected.sum(2).cpu(), atol=10 * tol)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("device", DEVICES)
def test_captured_map_equals_hugging_face_eager_attentions(device, padded, tmp_path):
    """Maps captured from GPT-2 (causal; with a right-padded batch the mask carries the causal
    triangle, without it the map's causal flag does) against the eager model's
    output_attentions; saved and loaded, moved to float64 and to the CPU, still equal to them."""
    sdpa, eager = tiny_gpt2_pair(device)
    ids = torch.randint(0, 50, (2, 11), device=device)
    attention_mask = torch.ones(2, 11, dtype=torch.long, device=device)
    if padded:
        attention_mask[1, 8:] = 0  # sample 1 has 8 real tokens
    with torch.no_grad():
        expected = eager(ids, attention_mask=attention_mask, output_attentions=True).attentions
        with capture(sdpa) as maps:
            sdpa(ids, attention_mask=attention_mask)
    assert list(maps) == ["transformer.h.0.attn", "transformer.h.1.attn"]
    for (name, amap), want in zip(maps.items(), expected, strict=True):
        want = want.double()
        assert_map_equals(amap, want)
        loaded = AttentionMap.load(amap.cpu().save(tmp_path / f"{name}.safetensors"))
        assert_map_equals(loaded, want)
        assert_map_equals(amap.to(torch.float64), want)
        assert_map_equals(amap.cpu(), want)


def softmax_from_module_weights(mha, query, key, mask):
    """The weights of an attnlab MultiHeadAttention computed from its parameters in float64:
    q = query·W_Qᵀ + b_Q, k = key·W_Kᵀ + b_K, heads split, GQA heads repeated, masked softmax."""
    H, H_kv = mha.n_heads, mha.n_kv_heads
    d_h = mha.d_model // H
    q = F.linear(query.double(), mha.q_proj.weight.double(), mha.q_proj.bias.double())
    k = F.linear(key.double(), mha.k_proj.weight.double(), mha.k_proj.bias.double())
    q = q.unflatten(-1, (H, d_h)).transpose(1, 2)  # (B, H, T, d_h)
    k = k.unflatten(-1, (H_kv, d_h)).transpose(1, 2).repeat_interleave(H // H_kv, dim=1)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d_h)
    return torch.softmax(scores.masked_fill(~mask, -math.inf), -1)


@pytest.mark.parametrize("device", DEVICES)
def test_captured_cross_attention_map_equals_softmax_of_the_module_weights(device, tmp_path):
    """attnlab's own layer: grouped-query cross-attention, Lq ≠ Lk, a per-sample key mask."""
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.attn = MultiHeadAttention(16, 4, n_kv_heads=2, kdim=12, vdim=12).eval().to(device)
    query = torch.randn(2, 7, 16, device=device)
    key = torch.randn(2, 9, 12, device=device)
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool, device=device)
    mask[0, ..., 5:] = False  # sample 0: keys 5.. are padding
    with torch.no_grad(), capture(model) as maps:
        model.attn(query, key, mask=mask)
    expected = softmax_from_module_weights(model.attn, query, key, mask)
    assert_map_equals(maps["attn"], expected)
    loaded = AttentionMap.load(maps["attn"].cpu().save(tmp_path / "attn.safetensors"))
    assert_map_equals(loaded, expected)


def test_row_blocks_cover_the_rows_asked_for_and_refuse_others():
    q, k = torch.randn(1, 2, 10, 4), torch.randn(1, 2, 10, 4)
    amap = AttentionMap(q=q, k=k, lse=torch.zeros(1, 2, 10), scale=0.5)
    one_row = 2 * 10 * 4  # bytes of one float32 row of weights (B·H·Lk·4)
    assert amap.row_blocks(3, 10, budget=3 * one_row) == [(3, 6), (6, 9), (9, 10)]
    assert amap.row_blocks(budget=1) == [(i, i + 1) for i in range(10)]
    for start, stop in ((5, 100), (-1, 4), (6, 5)):
        with pytest.raises(ValueError, match=rf"got start={start}, stop={stop}"):
            amap.row_blocks(start, stop)
