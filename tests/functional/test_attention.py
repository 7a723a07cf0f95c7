"""scaled_dot_product_attention against PyTorch's SDPA and an independent softmax written here."""

import math
import warnings
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import MultiHeadAttention, capture, masks, observe, scaled_dot_product_attention

TOL = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 3e-2}


def plain_attention(q, k, v, visible, scale, bias=None):
    """Independent oracle in float64 (no shared code with attnlab): scores plus an optional
    float bias, -inf where not visible, a max-shifted exponential normalised per row; rows with
    nothing visible get weight 0."""
    q, k, v = q.double(), k.double(), v.double()
    scores = torch.einsum("...qd,...kd->...qk", q, k) * scale
    if bias is not None:
        scores = scores + bias.double()
    weights = masked_softmax(scores, visible)
    return weights @ v, weights


def masked_softmax(scores, visible):
    """Row softmax of ``scores`` over the ``visible`` keys only, written out: -inf where hidden,
    a max-shifted exponential normalised per row; rows with nothing visible get weight 0."""
    scores = scores.masked_fill(~visible, -math.inf)
    peak = scores.amax(-1, keepdim=True).clamp(min=-1e300)
    e = torch.exp(scores - peak)
    total = e.sum(-1, keepdim=True)
    return torch.where(total > 0, e / total.clamp(min=1e-300), torch.zeros_like(e))


def end_aligned_causal(lq, lk):
    i = torch.arange(lq)[:, None]
    j = torch.arange(lk)[None, :]
    return j <= i + (lk - lq)


@st.composite
def attention_case(draw):
    lead = draw(st.sampled_from([(), (2,), (2, 3), (1, 2, 2)]))
    lq, lk = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    d_k, d_v = draw(st.sampled_from([1, 4, 8])), draw(st.sampled_from([1, 3, 4, 8]))
    mask_kind = draw(st.sampled_from(["none", "bool", "float", "padding", "empty_row"]))
    causal = draw(st.booleans())
    need_weights = draw(st.booleans())
    grad = draw(st.booleans())  # autograd on q, k, v: another kernel for weights
    captured = draw(st.booleans())  # an attention capture active: another kernel for weights
    scale = draw(st.sampled_from([None, 0.5]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
    k_lead = lead[-1:] if draw(st.booleans()) and lead else lead  # broadcast keys
    return Case(lead, k_lead, lq, lk, d_k, d_v, mask_kind, causal, need_weights, grad,
                captured, scale, dtype)  # fmt: skip


class Case(NamedTuple):
    lead: tuple
    k_lead: tuple
    lq: int
    lk: int
    d_k: int
    d_v: int
    mask_kind: str
    causal: bool
    need_weights: bool
    grad: bool
    captured: bool
    scale: float | None
    dtype: torch.dtype


def make_mask(c, g):
    """(mask for attnlab, visible (…, Lq, Lk) bool for the oracle, float bias or None)."""
    lq, lk = c.lq, c.lk
    visible = torch.ones(lq, lk, dtype=torch.bool)
    if c.mask_kind in ("bool", "empty_row"):
        mask = torch.rand(lq, lk, generator=g) > 0.3
        if c.mask_kind == "empty_row":
            mask[torch.randint(0, lq, (), generator=g)] = False  # a query that sees nothing
        return mask, mask, None
    if c.mask_kind == "float":
        mask = torch.randn(lq, lk, generator=g, dtype=c.dtype)
        mask = mask.masked_fill(torch.rand(lq, lk, generator=g) < 0.2, -math.inf)
        return mask, mask > -math.inf, mask
    if c.mask_kind == "padding" and c.lead:
        lengths = torch.randint(0, lk + 1, (c.lead[0],), generator=g)
        mask = masks.padding_from_lengths(lengths, lk).reshape(c.lead[0], *[1] * len(c.lead), lk)
        return mask, mask, None
    return None, visible, None


def run_attention(q, k, v, mask, c):
    """attnlab's attention on the route the case selects (capture on or off)."""
    kwargs = {"causal": c.causal, "scale": c.scale, "need_weights": c.need_weights}
    if not c.captured:
        return scaled_dot_product_attention(q, k, v, mask, **kwargs)
    with warnings.catch_warnings(), capture(MultiHeadAttention(8, 1)):
        warnings.simplefilter("ignore")  # routes that keep no map warn that none was captured
        return scaled_dot_product_attention(q, k, v, mask, **kwargs)


@settings(max_examples=200, deadline=None)
@given(attention_case(), st.integers(0, 2**31 - 1))
def test_matches_independent_softmax(c, seed):
    """Output, weights and (with autograd) gradients of q, k, v equal a float64 softmax written
    here, on every kernel: fused, blocked, flash+lse (capture), reference (autograd), PyTorch SDPA
    (d_k ≠ d_v), with masks, end-aligned causal, broadcast keys and rows that see nothing."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*c.lead, c.lq, c.d_k, generator=g, dtype=torch.float64).to(c.dtype)
    k = torch.randn(*c.k_lead, c.lk, c.d_k, generator=g, dtype=torch.float64).to(c.dtype)
    v = torch.randn(*c.k_lead, c.lk, c.d_v, generator=g, dtype=torch.float64).to(c.dtype)
    mask, visible, bias = make_mask(c, g)
    if c.causal:
        visible = visible & end_aligned_causal(c.lq, c.lk)
    s = c.d_k**-0.5 if c.scale is None else c.scale
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    expected_out, expected_w = plain_attention(*leaves, visible, s, bias)
    if c.grad:
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    out, weights = run_attention(q, k, v, mask, c)
    tol = TOL[c.dtype]
    assert out.dtype == c.dtype and out.shape == expected_out.shape
    torch.testing.assert_close(out.double(), expected_out, atol=tol, rtol=tol)
    if c.need_weights:
        assert weights.shape == expected_w.shape
        torch.testing.assert_close(weights.double(), expected_w, atol=tol, rtol=tol)
    else:
        assert weights is None
    # known gap, see test_float_mask_with_an_empty_row_gives_finite_gradients_with_weights
    gap = c.need_weights and bias is not None and not bool(visible.any(-1).all())
    if c.grad and c.dtype != torch.bfloat16 and not gap:
        probe = torch.randn(expected_out.shape, generator=g, dtype=torch.float64)
        want = torch.autograd.grad((expected_out * probe).sum(), leaves)
        got = torch.autograd.grad((out.double() * probe).sum(), (q, k, v))
        for name, a, b in zip("qkv", got, want, strict=True):
            torch.testing.assert_close(a.double(), b, atol=10 * tol, rtol=10 * tol, msg=name)


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


def test_float_mask_with_an_empty_row_gives_finite_gradients_with_weights():
    q, k, v = (torch.randn(1, 1, 3, 4, dtype=torch.float64, requires_grad=True) for _ in "qkv")
    bias = torch.zeros(3, 3, dtype=torch.float64)
    bias[1] = -math.inf  # query 1 sees nothing
    out, _ = scaled_dot_product_attention(q, k, v, bias, need_weights=True)
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    want_out, _ = plain_attention(*leaves, bias > -math.inf, 0.5, bias)
    got = torch.autograd.grad(out.sum(), (q, k, v))
    want = torch.autograd.grad(want_out.sum(), leaves)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


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


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_value_size_may_differ_from_key_size(need_weights, grad, causal):
    """d_v ≠ d_k on every route: the default scale is 1/√d_k (never d_v), the mask and the
    end-aligned causal mask apply, and the output has d_v columns."""
    q = torch.randn(2, 2, 5, 8, dtype=torch.float64, requires_grad=grad)
    k = torch.randn(2, 2, 6, 8, dtype=torch.float64, requires_grad=grad)
    v = torch.randn(2, 2, 6, 3, dtype=torch.float64, requires_grad=grad)
    mask = torch.rand(2, 1, 5, 6) > 0.3
    mask[0, 0, 2] = False  # a query that sees nothing
    visible = mask & end_aligned_causal(5, 6) if causal else mask
    want_out, want_w = plain_attention(q.detach(), k.detach(), v.detach(), visible, 8**-0.5)
    out, w = scaled_dot_product_attention(q, k, v, mask, causal=causal, need_weights=need_weights)
    assert out.shape == (2, 2, 5, 3)
    torch.testing.assert_close(out.detach(), want_out, atol=1e-10, rtol=1e-10)
    if need_weights:
        torch.testing.assert_close(w.detach(), want_w, atol=1e-10, rtol=1e-10)


def test_dropout_in_training_with_mask_and_causal():
    q, k, v = (torch.randn(2, 2, 6, 4) for _ in range(3))
    mask = masks.padding_from_lengths([4, 6], 6)
    torch.manual_seed(1)
    out, _ = scaled_dot_product_attention(q, k, v, mask, causal=True, dropout=0.0001, training=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & masks.causal(6))
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=2e-3)  # dropout almost never fires
