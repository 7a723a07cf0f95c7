"""scaled_dot_product_attention against PyTorch's SDPA and an independent softmax written here."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import masks, observe, scaled_dot_product_attention

TOL = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 3e-2}


def plain_attention(q, k, v, visible, scale, bias=None):
    """Independent oracle in float64 (no shared code with attnlab): scores plus an optional
    float bias, -inf where not visible, a max-shifted exponential normalised per row; rows with
    nothing visible get weight 0."""
    q, k, v = q.double(), k.double(), v.double()
    scores = torch.einsum("...qd,...kd->...qk", q, k) * scale
    if bias is not None:
        scores = scores + bias.double()
    scores = scores.masked_fill(~visible, -math.inf)
    peak = scores.amax(-1, keepdim=True).clamp(min=-1e300)
    e = torch.exp(scores - peak)
    total = e.sum(-1, keepdim=True)
    weights = torch.where(total > 0, e / total.clamp(min=1e-300), torch.zeros_like(e))
    return weights @ v, weights


def end_aligned_causal(lq, lk):
    i = torch.arange(lq)[:, None]
    j = torch.arange(lk)[None, :]
    return j <= i + (lk - lq)


@st.composite
def attention_case(draw):
    lead = draw(st.sampled_from([(), (2,), (2, 3), (1, 2, 2)]))
    lq, lk = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    d = draw(st.sampled_from([1, 4, 8]))
    mask_kind = draw(st.sampled_from(["none", "bool", "float", "padding"]))
    causal = draw(st.booleans())
    need_weights = draw(st.booleans())
    scale = draw(st.sampled_from([None, 0.5]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    k_lead = lead[-1:] if draw(st.booleans()) and lead else lead  # broadcast keys
    return lead, k_lead, lq, lk, d, mask_kind, causal, need_weights, scale, dtype


@settings(max_examples=150, deadline=None)
@given(attention_case(), st.integers(0, 2**31 - 1))
def test_matches_independent_softmax(case, seed):
    lead, k_lead, lq, lk, d, mask_kind, causal, need_weights, scale, dtype = case
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*lead, lq, d, generator=g, dtype=dtype)
    k = torch.randn(*k_lead, lk, d, generator=g, dtype=dtype)
    v = torch.randn(*k_lead, lk, d, generator=g, dtype=dtype)
    visible = torch.ones(lq, lk, dtype=torch.bool)
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(lq, lk, generator=g) > 0.3
        visible = mask
    elif mask_kind == "float":
        mask = torch.randn(lq, lk, generator=g, dtype=dtype)
        mask = mask.masked_fill(torch.rand(lq, lk, generator=g) < 0.2, -math.inf)
        visible = mask > -math.inf
    elif mask_kind == "padding" and lead:
        lengths = torch.randint(0, lk + 1, (lead[0],), generator=g)
        mask = masks.padding_from_lengths(lengths, lk).reshape(lead[0], *([1] * len(lead)), lk)
        visible = mask
    if causal:
        visible = visible & end_aligned_causal(lq, lk)
    s = d**-0.5 if scale is None else scale
    bias = mask if mask is not None and mask.dtype != torch.bool else None
    expected_out, expected_w = plain_attention(q, k, v, visible, s, bias)
    out, weights = scaled_dot_product_attention(
        q, k, v, mask, causal=causal, scale=scale, need_weights=need_weights
    )
    tol = TOL[dtype]
    torch.testing.assert_close(out.double(), expected_out, atol=tol, rtol=tol)
    if need_weights:
        torch.testing.assert_close(weights.double(), expected_w, atol=tol, rtol=tol)
    else:
        assert weights is None


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3), st.integers(1, 4), st.integers(1, 40), st.booleans(), st.booleans(),
    st.integers(0, 2**31 - 1),
)  # fmt: skip
def test_matches_pytorch_sdpa(batch, heads, n, causal, with_mask, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, n, 16, generator=g) for _ in range(3))
    mask = (torch.rand(batch, 1, n, n, generator=g) > 0.2) if with_mask else None
    if mask is not None:
        mask[..., 0] = True  # PyTorch's math path gives NaN on fully masked rows
    if causal and mask is not None:
        expected = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask & torch.ones(n, n, dtype=torch.bool).tril()
        )
    else:
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    out, _ = scaled_dot_product_attention(q, k, v, mask, causal=causal)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fully_masked_rows_give_zero_not_nan(need_weights, grad, dtype):
    q, k, v = (torch.randn(2, 2, 4, 8, dtype=dtype, requires_grad=grad) for _ in range(3))
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    mask[0, :, 1] = False  # query row 1 of sample 0 sees nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
    assert not out.isnan().any()
    assert (out[0, :, 1] == 0).all()
    if need_weights:
        assert (weights[0, :, 1] == 0).all()
        assert not weights.isnan().any()
    if grad:
        out.sum().backward()
        assert not q.grad.isnan().any()


def test_fully_masked_padding_sample_gives_zero():
    q, k, v = (torch.randn(2, 2, 5, 8) for _ in range(3))
    mask = masks.padding_from_lengths([0, 3], 5)
    out, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    assert (out[0] == 0).all() and (weights[0] == 0).all()
    assert (weights[1, ..., 3:] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_weight_rows_sum_to_one_where_any_key_is_visible(causal):
    q, k, v = (torch.randn(3, 4, 12, 8) for _ in range(3))
    mask = torch.rand(3, 1, 12, 12) > 0.5
    _, weights = scaled_dot_product_attention(q, k, v, mask, causal=causal, need_weights=True)
    visible = mask & torch.ones(12, 12, dtype=torch.bool).tril() if causal else mask
    any_visible = visible.expand(3, 4, 12, 12).any(-1)
    sums = weights.sum(-1)
    torch.testing.assert_close(sums[any_visible], torch.ones_like(sums[any_visible]))
    assert (sums[~any_visible] == 0).all()


def test_causal_with_fewer_queries_is_aligned_to_the_end():
    """The decoding-with-cache case: the last query sees every key."""
    q = torch.randn(1, 1, 2, 8)
    k, v = torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    _, w = scaled_dot_product_attention(q, k, v, causal=True, need_weights=True)
    assert (w[0, 0, 1] > 0).all()
    assert (w[0, 0, 0, :4] > 0).all() and w[0, 0, 0, 4] == 0


def test_boolean_causal_mask_takes_the_is_causal_route():
    q, k, v = (torch.randn(1, 2, 16, 8) for _ in range(3))
    notes = []

    class Notes(observe.Observer):
        def step(self, module, step):
            notes.append(step.note)

    with observe.observing(Notes()):
        out, _ = scaled_dot_product_attention(q, k, v, masks.causal(16))
    assert any("recognised as causal" in n for n in notes)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_padded_batch_takes_the_per_sample_route_and_matches_sdpa():
    q, k, v = (torch.randn(3, 2, 20, 8) for _ in range(3))
    mask = masks.padding_from_lengths([5, 20, 11], 20)
    notes = []

    class Notes(observe.Observer):
        def step(self, module, step):
            notes.append(step.note)

    with observe.observing(Notes()):
        out, _ = scaled_dot_product_attention(q, k, v, mask)
    assert any("key-padding" in n for n in notes)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


@pytest.mark.parametrize("causal", [False, True])
def test_padded_causal_matches_sdpa_with_combined_mask(causal):
    q, k, v = (torch.randn(3, 2, 20, 8) for _ in range(3))
    mask = masks.padding_from_lengths([5, 20, 11], 20)
    combined = mask & torch.ones(20, 20, dtype=torch.bool).tril() if causal else mask
    out, w = scaled_dot_product_attention(q, k, v, mask, causal=causal, need_weights=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=combined)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert (w.masked_select(~combined.expand_as(w)) == 0).all()


def test_bfloat16_close_to_float32():
    q, k, v = (torch.randn(2, 2, 10, 16) for _ in range(3))
    out32, w32 = scaled_dot_product_attention(q, k, v, causal=True, need_weights=True)
    out16, w16 = scaled_dot_product_attention(
        q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=True, need_weights=True
    )
    assert out16.dtype == torch.bfloat16
    torch.testing.assert_close(out16.float(), out32, atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(w16.float(), w32, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"causal": True},
        {"mask": "bool"},
        {"need_weights": True},
        {"need_weights": True, "causal": True, "mask": "bool"},
    ],
)
def test_gradients_match_finite_differences(kwargs):
    kwargs = dict(kwargs)
    if kwargs.get("mask") == "bool":
        kwargs["mask"] = torch.rand(1, 2, 4, 4) > 0.3
    q, k, v = (torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))

    def f(q, k, v):
        out, w = scaled_dot_product_attention(q, k, v, **kwargs)
        return (out, w) if w is not None else out

    assert torch.autograd.gradcheck(f, (q, k, v))


def test_gradients_equal_pytorch_sdpa():
    q, k, v = (torch.randn(2, 3, 7, 8, requires_grad=True) for _ in range(3))
    out, _ = scaled_dot_product_attention(q, k, v, causal=True)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_dropout_only_in_training_and_weights_are_before_dropout():
    q, k, v = (torch.randn(1, 1, 6, 4) for _ in range(3))
    eval_out, _ = scaled_dot_product_attention(q, k, v, dropout=0.5, training=False)
    torch.testing.assert_close(eval_out, F.scaled_dot_product_attention(q, k, v))
    train_out, w = scaled_dot_product_attention(
        q, k, v, dropout=0.5, training=True, need_weights=True
    )
    assert not torch.allclose(train_out, eval_out)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 1, 6))


def test_value_size_may_differ_from_key_size():
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    out, w = scaled_dot_product_attention(q, k, v, need_weights=True)
    assert out.shape == (2, 5, 3)
    torch.testing.assert_close(out, w @ v)


def test_dropout_in_training_with_mask_and_causal():
    q, k, v = (torch.randn(2, 2, 6, 4) for _ in range(3))
    mask = masks.padding_from_lengths([4, 6], 6)
    torch.manual_seed(1)
    out, _ = scaled_dot_product_attention(q, k, v, mask, causal=True, dropout=0.0001, training=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & masks.causal(6))
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-3)  # dropout almost never fires
