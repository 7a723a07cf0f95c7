"""The blocked weights kernel against an independent float64 softmax, with block sizes forced
small so that every route runs: several whole heads per block, row blocks, causal row blocks
with their partial last block, broadcast masks and fully masked rows."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import scaled_dot_product_attention
from attnlab.functional.attention import attention_weights_from_lse
from attnlab.functional.bias import AttentionBias
from attnlab.functional.blocked import DEFAULT_BLOCKING, Blocking, attention_with_weights
from attnlab.functional.reference import reference_attention

from .test_attention import plain_attention

TOL = {torch.float32: 2e-5, torch.float64: 1e-10}


def oracle(q, k, v, bias, causal, scale):
    """softmax(q·kᵀ·scale + bias)·v in float64 by test_attention's independent softmax; rows
    with nothing visible get weight 0."""
    lq, lk = q.shape[-2], k.shape[-2]
    visible = torch.ones(lq, lk, dtype=torch.bool)
    return plain_attention(q, k, v, visible.tril() if causal else visible, scale, bias)


@st.composite
def case(draw):
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    causal = draw(st.booleans())
    lq = draw(st.integers(1, 150))
    lk = lq if causal else draw(st.integers(1, 150))
    d_k, d_v = draw(st.sampled_from([1, 8])), draw(st.sampled_from([1, 8, 5]))
    bias_shape = draw(st.sampled_from([None, (lq, lk), (b, 1, lq, lk), (1, h, 1, lk)]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    plane = lq * lk * dtype.itemsize  # bytes of one head's weights
    block = draw(
        st.sampled_from(
            [
                DEFAULT_BLOCKING,
                # one or two whole heads per block, causal ones too (triangle added)
                Blocking(block_bytes=plane, causal_whole_bytes=plane),
                Blocking(block_bytes=2 * plane, causal_whole_bytes=2 * plane),
                # row blocks of 16 rows, one head per causal block
                Blocking(
                    1, min_rows=16, causal_whole_bytes=0, causal_rows=16, causal_scratch_bytes=1
                ),
                # causal blocks of 32 rows and two heads (uneven against H = 3)
                Blocking(
                    causal_whole_bytes=0, causal_rows=32, causal_scratch_bytes=2 * 32 * lk * 4
                ),
            ]
        )
    )
    return b, h, lq, lk, d_k, d_v, causal, bias_shape, block, dtype


@settings(max_examples=120, deadline=None)
@given(case(), st.integers(0, 2**31 - 1))
def test_matches_independent_softmax(c, seed):
    b, h, lq, lk, d_k, d_v, causal, bias_shape, block, dtype = c
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, lq, d_k, generator=g, dtype=dtype)
    k = torch.randn(b, h, lk, d_k, generator=g, dtype=dtype)
    v = torch.randn(b, h, lk, d_v, generator=g, dtype=dtype)
    bias = None
    if bias_shape is not None:  # random −inf holes (whole rows included) and finite offsets
        bias = torch.randn(bias_shape, generator=g, dtype=dtype)
        bias = bias.masked_fill(torch.rand(bias_shape, generator=g) < 0.4, -math.inf)
    out, w = attention_with_weights(q, k, v, bias, causal=causal, scale=0.3, blocking=block)
    want_out, want_w = oracle(q, k, v, bias, causal, 0.3)
    assert out.dtype == dtype and w.shape == (b, h, lq, lk)
    assert not out.isnan().any() and not w.isnan().any()
    torch.testing.assert_close(w.double(), want_w, atol=TOL[dtype], rtol=TOL[dtype])
    torch.testing.assert_close(out.double(), want_out, atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("causal", [False, True])
def test_equals_weights_recomputed_from_the_flash_log_sum_exp(causal):
    """Two independent exact routes to the same weights: blocked softmax vs exp(s − lse)."""
    q, k, v = (torch.randn(2, 3, 200, 16) for _ in range(3))
    small = Blocking(block_bytes=1, min_rows=16, causal_whole_bytes=0, causal_rows=48)
    out, w = attention_with_weights(q, k, v, None, causal=causal, scale=0.25, blocking=small)
    flash_out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, causal, scale=0.25
    )
    torch.testing.assert_close(out, flash_out, atol=2e-5, rtol=2e-5)
    from_lse = attention_weights_from_lse(
        q, k, lse, AttentionBias(200, 200, causal=causal), scale=0.25
    )
    torch.testing.assert_close(w, from_lse, atol=2e-6, rtol=2e-5)


def test_bfloat16_output_keeps_its_dtype_and_weights_are_float32():
    q, k, v = (torch.randn(1, 2, 70, 8, dtype=torch.bfloat16) for _ in range(3))
    small = Blocking(causal_whole_bytes=0, causal_rows=16)
    out, w = attention_with_weights(q, k, v, None, causal=True, scale=0.35, blocking=small)
    assert out.dtype == torch.bfloat16 and w.dtype == torch.float32
    want_out, want_w = oracle(q, k, v, None, True, 0.35)
    torch.testing.assert_close(w.double(), want_w, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.double(), want_out, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize(
    ("need_weights", "grad", "runs_blocked"),
    [(True, False, True), (True, True, False), (False, False, False), (False, True, False)],
)
def test_scaled_dot_product_attention_runs_the_blocked_kernel_for_weights_without_grad(
    spy, need_weights, grad, runs_blocked
):
    """Weights without autograd are computed by the blocked kernel (no gradient support, so
    never when one is needed); its results are what the caller gets."""
    blocked = spy(attention_with_weights)
    reference = spy(reference_attention)
    q, k, v = (torch.randn(2, 10, 8, requires_grad=grad) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v, causal=True, need_weights=need_weights)
    assert len(blocked) == int(runs_blocked)
    assert len(reference) == int(need_weights and grad)  # weights with autograd
    want_out, want_w = oracle(q.detach(), k.detach(), v.detach(), None, True, 8**-0.5)
    torch.testing.assert_close(out.detach().double(), want_out, atol=2e-5, rtol=2e-5)
    if need_weights:
        torch.testing.assert_close(w.detach().double(), want_w, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("shape", [(2, 3, 0, 8), (0, 3, 4, 8)])
def test_empty_inputs_give_empty_results(shape):
    q = torch.randn(shape)
    k = v = torch.randn(shape[0], shape[1], 5, 8)
    out, w = scaled_dot_product_attention(q, k, v, need_weights=True)
    assert out.shape == (*shape[:3], 8) and w.shape == (*shape[:3], 5)


def test_no_keys_gives_zero_output_and_empty_weights():
    q, kv = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 0, 8)
    out, w = attention_with_weights(q, kv, kv, None, causal=False, scale=0.5)
    assert w.shape == (2, 3, 4, 0) and bool((out == 0).all())


def test_a_float_mask_that_needs_gradients_goes_to_the_reference_kernel():
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    bias = torch.zeros(4, 4, requires_grad=True)
    out, w = scaled_dot_product_attention(q, k, v, bias, need_weights=True)
    assert out.requires_grad and w.requires_grad
    (out.sum() + w[..., 0].sum()).backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0
