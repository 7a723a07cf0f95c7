"""Dropout from random bits (attnlab.functional.dropout) and the attention dropout built on it,
against what dropout means: the keep rate, the scale, the gradient, every element independent,
and the math route's formula with the same mask."""

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab import scaled_dot_product_attention
from attnlab.functional.dropout import dropout, dropout_add, dropout_scale, keep_mask
from attnlab.nn.dropout import dropout as module_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_is_one_minus_p_at_every_position_of_a_random_word(p):
    torch.manual_seed(0)
    n = 400_000
    keep = keep_mask((n,), p).double()
    sigma = math.sqrt(p * (1 - p) / (n / 4))
    # Each of the four 16-bit numbers of a 64-bit word alone (a biased bit shows in one of them).
    for lane in range(4):
        assert abs(float(keep[lane::4].mean()) - (1 - p)) < 6 * sigma
    # Neighbours are independent: P(both kept) = (1 − p)².
    both = float((keep[:-1] * keep[1:]).mean())
    assert abs(both - (1 - p) ** 2) < 6 * math.sqrt((1 - p) ** 2 / n)


def test_kept_elements_are_scaled_so_the_expectation_is_the_input():
    torch.manual_seed(1)
    x = torch.randn(64, 256, requires_grad=True)
    y = dropout(x, 0.1)
    kept = y != 0
    scale = dropout_scale(0.1)
    assert scale == pytest.approx(1 / (1 - round(0.1 * 65536) / 65536))
    torch.testing.assert_close(y[kept], x.detach()[kept] * scale)
    g = torch.randn_like(x)
    y.backward(g)
    torch.testing.assert_close(x.grad, g * kept * scale)  # the same mask, scaled
    # Over many draws the mean of dropout(1) is 1.
    ones = torch.ones(1_000_000)
    assert float(dropout(ones, 0.3).mean()) == pytest.approx(1.0, abs=3e-3)


def test_the_generator_reproduces_the_mask_and_eval_is_the_identity():
    x = torch.randn(8, 32)
    torch.manual_seed(5)
    a = dropout(x, 0.2)
    torch.manual_seed(5)
    b = dropout(x, 0.2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert dropout(x, 0.2, training=False) is x and dropout(x, 0.0) is x
    r = torch.randn(8, 32)
    torch.manual_seed(5)
    torch.testing.assert_close(dropout_add(r, x, 0.2), r + a)


def test_module_dropout_uses_the_bits_in_training_and_calls_hooked_modules():
    module = torch.nn.Dropout(0.25).train()
    x = torch.randn(16, 16)
    torch.manual_seed(2)
    got = module_dropout(module, x)
    torch.manual_seed(2)
    torch.testing.assert_close(got, dropout(x, 0.25), rtol=0, atol=0)
    seen = []
    module.register_forward_hook(lambda m, i, o: seen.append(o))
    module_dropout(module, x)
    assert len(seen) == 1  # a hooked module is called as a module
    assert module_dropout(module.eval(), x) is not None


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_attention_dropout_is_softmax_times_the_mask_times_v(causal, padded, dtype):
    g = torch.Generator().manual_seed(3)
    B, H, T, d = 2, 3, 7, 4
    q, k, v = (torch.randn(B, H, T, d, generator=g, dtype=dtype, requires_grad=True)
               for _ in range(3))  # fmt: skip
    attention_mask = None
    if padded:
        attention_mask = torch.ones(B, T, dtype=torch.bool)
        attention_mask[1, -2:] = False
    torch.manual_seed(9)
    out, _ = scaled_dot_product_attention(q, k, v, causal=causal, dropout=0.4, training=True,
                                          attention_mask=attention_mask)  # fmt: skip
    torch.manual_seed(9)
    keep = keep_mask((B, H, T, T), 0.4)
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(d)
    visible = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        visible &= torch.ones(T, T, dtype=torch.bool).tril()
    if padded:
        visible &= attention_mask[:, None, None, :]
    weights = torch.softmax(scores.masked_fill(~visible, -math.inf), -1)
    want = (weights * keep * dropout_scale(0.4)) @ v.double()
    tol = 1e-5 if dtype == torch.float32 else 1e-12  # float64 is not rounded to float32
    torch.testing.assert_close(out.double(), want, atol=tol, rtol=tol)
    grad = torch.randn_like(out)
    (dq,) = torch.autograd.grad(out, q, grad)
    (dq_want,) = torch.autograd.grad(want, q, grad.double())
    torch.testing.assert_close(dq.double(), dq_want.double(), atol=tol, rtol=tol)


@pytest.mark.parametrize(
    "lead, lq, lk",
    [((2, 2), 150, 150), ((2, 2), 130, 70), ((3,), 70, 200), ((), 65, 3), ((2, 1), 64, 64)],
)
@pytest.mark.parametrize("dtype, p", [(torch.float32, 0.3), (torch.bfloat16, 0.0)])
def test_long_causal_attention_keeps_every_weight_below_the_diagonal(dtype, p, lead, lq, lk):
    """Causal attention with dropout (and bf16 training) runs by blocks of 64 query rows (150
    positions: blocks of 64, 64 and 22), also with fewer or more keys than queries (the causal
    rule aligned at the start), 2-D and 3-D inputs and non-contiguous ones. With v the identity
    the output is the dropped-out weight matrix itself: every weight on and below the diagonal
    is either kept, scaled, or dropped, none above it, and the gradient is that of the
    recovered mask."""
    g = torch.Generator().manual_seed(4)
    d = 8
    q, k = (torch.randn(*lead, n, 2 * d, generator=g)[..., ::2].to(dtype).requires_grad_()
            for n in (lq, lk))  # fmt: skip
    v = torch.eye(lk, dtype=dtype).expand(*lead, lk, lk).clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        out, _ = scaled_dot_product_attention(q, k, v, causal=True, causal_alignment="start",
                                              dropout=p, training=True)  # fmt: skip
    scores = (q.double() @ k.double().transpose(-2, -1)) / math.sqrt(d)
    below = torch.ones(lq, lk, dtype=torch.bool).tril()
    weights = torch.softmax(scores.masked_fill(~below, -math.inf), -1)
    kept = out.detach() != 0
    assert not kept[..., ~below].any()  # nothing above the diagonal
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    want = weights * kept * dropout_scale(p)
    torch.testing.assert_close(out.double(), want, **tol)
    dropped = 1 - kept[..., below].double().mean().item()
    n = math.prod(lead) * int(below.sum())
    assert abs(dropped - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-3  # every block drops
    grad = torch.randn(out.shape, generator=g).to(dtype)
    dq, dk = torch.autograd.grad(out, (q, k), grad)
    dq_want, dk_want = torch.autograd.grad(want, (q, k), grad.double())
    torch.testing.assert_close(dq.double(), dq_want.double(), **tol)
    torch.testing.assert_close(dk.double(), dk_want.double(), **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_drops_exactly_the_elements_keep_mask_names(dtype):
    """The fast mask (the comparison written straight into x's dtype) and keep_mask agree on
    every element for the same generator state: 2²¹ elements meet the threshold itself ~32
    times, so a comparison off by one shows."""
    n = 1 << 21
    torch.manual_seed(5)
    got = dropout(torch.ones(n, dtype=dtype), 0.1)
    torch.manual_seed(5)
    keep = keep_mask((n,), 0.1)
    assert torch.equal(got != 0, keep)
    assert (got[keep] == torch.tensor(dropout_scale(0.1), dtype=dtype)).all()


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), True, "0.1"])
def test_a_p_that_is_not_a_probability_is_refused_by_name(p):
    x = torch.ones(8)
    state = torch.get_rng_state()
    for call in (lambda: dropout(x, p), lambda: dropout_add(x, x, p), lambda: keep_mask((8,), p)):
        with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\]; got"):
            call()
    assert torch.equal(torch.get_rng_state(), state)  # refused before any draw


@pytest.mark.parametrize("p", [1.0, 1 - 1e-9])
def test_p_one_drops_everything_as_torch_does(p):
    x = torch.randn(64, requires_grad=True)
    state = torch.get_rng_state()
    dropout(x, p), keep_mask((64,), p), dropout_add(x, x, p)
    assert torch.equal(torch.get_rng_state(), state)  # nothing to draw
    torch.testing.assert_close(dropout(x, p), F.dropout(x.detach(), 1.0))
    assert not keep_mask((64,), p).any()
    residual = torch.randn(64)
    torch.testing.assert_close(dropout_add(residual, x, p), residual)
    (grad,) = torch.autograd.grad(dropout(x, p).sum(), x)
    assert torch.equal(grad, torch.zeros(64))


def test_causal_attention_with_dropout_takes_an_empty_head_size():
    q, k, v = torch.ones(2, 3, 70, 0), torch.ones(2, 3, 70, 0), torch.ones(2, 3, 70, 5)
    out, _ = scaled_dot_product_attention(q, k, v, causal=True, causal_alignment="start",
                                          dropout=0.0, training=True)  # fmt: skip
    assert out.shape == (2, 3, 70, 5)
    torch.manual_seed(0)
    out, _ = scaled_dot_product_attention(q, k, v, causal=True, causal_alignment="start",
                                          dropout=0.5, training=True)  # fmt: skip
    assert out.shape == (2, 3, 70, 5) and torch.isfinite(out).all()
