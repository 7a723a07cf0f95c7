"""Causal attention with dropout by blocks, with its own backward: its output and all three
gradients against autograd through the paper's formula in float64, and its backward against
finite differences."""

import math

import pytest
import torch

from attnlab.functional.causal_blocks import causal_blocks
from attnlab.functional.dropout import dropout_scale

SHAPES = [
    ((2, 3), 150, 150, 5, 7),
    ((4,), 130, 70, 4, 3),
    ((), 70, 200, 6, 2),
    ((1, 2), 64, 64, 0, 4),
]


def _inputs(lead, lq, lk, d_k, d_v, seed, interleaved=False):
    """Leaf tensors (*lead, L, d); ``interleaved``: views whose last leading dimension (the
    heads) is interleaved in memory, as heads split off a (B, T, H·d) projection are."""
    g = torch.Generator().manual_seed(seed)

    def make(length, d):
        if not interleaved:
            return torch.randn(*lead, length, d, generator=g, dtype=torch.float64)
        made = torch.randn(*lead[:-1], length, lead[-1], d, generator=g, dtype=torch.float64)
        return made.transpose(-3, -2)

    q, k, v = make(lq, d_k), make(lk, d_k), make(lk, d_v)
    return (t.requires_grad_() for t in (q, k, v))


@pytest.mark.parametrize(
    "lead, lq, lk, d_k, d_v, interleaved",
    [(*shape, False) for shape in SHAPES]
    + [(*shape, True) for shape in SHAPES[:2] + SHAPES[3:]]
    + [((4, 2), 130, 70, 4, 3, True), ((2, 3), 60, 140, 3, 5, True)],
)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_output_and_every_gradient_equal_autograd_through_the_formula(lead, lq, lk, d_k, d_v,
                                                                      interleaved, p):  # fmt: skip
    """The mask is recovered from a run with v the identity under the same generator state
    (out = s·(W ⊙ M) then), so the reference softmax(q·kᵀ/√d_k, causal) ⊙ M·s·v and its
    gradients are autograd's, in float64, for every block (150 rows: 64, 64 and 22), fewer and
    more keys than queries, 2-D to 4-D inputs, an empty head size, and heads interleaved in
    memory (looped over one by one)."""
    q, k, v = _inputs(lead, lq, lk, d_k, d_v, seed=lq + lk, interleaved=interleaved)
    scale = 1 / math.sqrt(max(d_k, 1))
    torch.manual_seed(11)
    eye = torch.eye(lk, dtype=torch.float64).expand(*lead, lk, lk)
    kept = causal_blocks(q.detach(), k.detach(), eye, scale, p) != 0  # (…, Lq, Lk)
    torch.manual_seed(11)
    out = causal_blocks(q, k, v, scale, p)

    below = torch.ones(lq, lk, dtype=torch.bool).tril()
    scores = (q @ k.transpose(-2, -1) * scale).masked_fill(~below, -math.inf)
    want = (torch.softmax(scores, -1) * kept * dropout_scale(p)) @ v
    if p == 0:
        assert kept[..., below].all()
    else:
        assert not kept[..., ~below].any()
        dropped = 1 - kept[..., below].double().mean().item()
        assert abs(dropped - p) <= 5 * math.sqrt(p * (1 - p) / kept[..., below].numel())
    torch.testing.assert_close(out, want, atol=1e-12, rtol=1e-12)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    got = torch.autograd.grad(out, (q, k, v), grad)
    expected = torch.autograd.grad(want, (q, k, v), grad)
    for name, a, b in zip("qkv", got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12, msg=f"d{name}")


@pytest.mark.parametrize("p", [0.0, 0.4])
@pytest.mark.parametrize("lead, interleaved", [((2,), False), ((2, 2), True)])
def test_the_backward_equals_finite_differences(p, lead, interleaved):
    """gradcheck with the generator reset before every call, so the mask stays fixed while
    finite differences move q, k and v: two blocks (70 rows), more keys than queries, batched
    heads and heads looped over."""
    q, k, v = _inputs(lead, 70, 75, 2, 2, seed=3, interleaved=interleaved)

    def attention(q, k, v):
        torch.manual_seed(5)
        return causal_blocks(q, k, v, 0.7, p)

    assert torch.autograd.gradcheck(attention, (q, k, v), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("made_in", [torch.bfloat16, torch.float32])
def test_bfloat16_under_autocast_follows_float32(made_in):
    """bfloat16 training runs the same blocks in bfloat16 (the softmax computed in float32):
    within bfloat16's rounding of the float32 result, gradients included; also for q, k and v
    made in float32 under autocast (e.g. after a position encoding computed in float32), which
    are cast as autocast would cast them, their gradients reaching the float32 leaves."""
    q, k, v = (t.detach().float().requires_grad_() for t in _inputs((2, 2), 100, 100, 8, 8, 6))
    grad = torch.randn(2, 2, 100, 8, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(4)
    want = causal_blocks(q, k, v, 8**-0.5, 0.2)
    want_grads = torch.autograd.grad(want, (q, k, v), grad)
    torch.manual_seed(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = causal_blocks(*(t.to(made_in) for t in (q, k, v)), 8**-0.5, 0.2)
    assert got.dtype == torch.bfloat16
    got_grads = torch.autograd.grad(got, (q, k, v), grad.bfloat16())
    torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=3e-2)
    for a, b in zip(got_grads, want_grads, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=6e-2, rtol=6e-2)


@pytest.mark.parametrize("lead, interleaved", [((2,), False), ((2, 2), True)])
def test_second_derivatives_equal_finite_differences_of_the_first(lead, interleaved):
    """With create_graph the backward goes through autograd's own operations with the same
    masks, so a gradient penalty or a Hessian-vector product is exact (gradgradcheck, the
    generator reset before every call); batched heads and heads looped over."""
    q, k, v = _inputs(lead, 66, 66, 2, 2, seed=8, interleaved=interleaved)

    def attention(q, k, v):
        torch.manual_seed(6)
        return causal_blocks(q, k, v, 0.7, 0.3)

    assert torch.autograd.gradgradcheck(attention, (q, k, v), atol=1e-8, rtol=1e-6)
    grad = torch.randn(*lead, 66, 2, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    first = torch.autograd.grad(attention(q, k, v), (q, k, v), grad)
    differentiable = torch.autograd.grad(attention(q, k, v), (q, k, v), grad, create_graph=True)
    for a, b in zip(differentiable, first, strict=True):  # the two backward routes agree
        assert b.grad_fn is None and a.grad_fn is not None
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_heads_split_off_a_projection_come_back_heads_last():
    """For (B, H, T, d) views of a (B, T, H·d) projection, the output and the gradients are
    stored (B, T, H, d): the concatenation of heads is a view, and so is the projection's
    gradient, with no copy in either direction."""
    q, k, v = _inputs((3, 4), 130, 130, 8, 8, seed=2, interleaved=True)
    out = causal_blocks(q, k, v, 0.3, 0.1)
    assert out.transpose(1, 2).is_contiguous()
    for grad in torch.autograd.grad(out, (q, k, v), torch.ones_like(out)):
        assert grad.transpose(1, 2).is_contiguous()


def test_the_output_can_be_edited_in_place_as_a_hook_ablation_does():
    """A view returned by a custom Function may not be changed in place: the output is not one.
    Zeroing a head in place, then backward: that head's q, k and v get no gradient."""
    q, k, v = _inputs((2, 3), 130, 130, 4, 4, seed=5, interleaved=True)
    out = causal_blocks(q, k, v, 0.5, 0.1)
    out[:, 1] = 0
    out.sum().backward()
    for t in (q, k, v):
        assert t.grad[:, 1].abs().sum() == 0 and t.grad[:, 0].abs().sum() > 0


def test_the_meta_device_gives_shapes_without_data():
    q, k, v = (torch.empty(2, 3, 130, 4, device="meta", requires_grad=True) for _ in range(3))
    out = causal_blocks(q, k, v, 0.5, 0.1)
    assert out.shape == (2, 3, 130, 4) and out.device.type == "meta"
    out.sum().backward()
    assert q.grad.shape == q.shape and v.grad.device.type == "meta"


@pytest.mark.parametrize("alignment", [{"causal_alignment": "start"}, {}])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_training_without_dropout_takes_the_blocks_and_equals_the_kernel(
    spy, dtype, alignment
):
    """Training on CPU runs start-aligned causal attention by these blocks in every dtype (they
    beat PyTorch's flash kernel there); inference and other masks keep the kernel."""
    import torch.nn.functional as F

    from attnlab import scaled_dot_product_attention

    calls = spy(causal_blocks)
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, 3, 90, 8, generator=g).to(dtype).requires_grad_() for _ in "qkv")
    out, _ = scaled_dot_product_attention(q, k, v, causal=True, **alignment)
    assert len(calls) == 1  # the default (end-aligned, as many queries as keys) too
    want = F.scaled_dot_product_attention(*(t.double() for t in (q, k, v)), is_causal=True)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(out.double(), want, **tol)
    grad = torch.randn(out.shape, generator=g).to(dtype)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), grad),
                    torch.autograd.grad(want, (q, k, v), grad.double()), strict=True):  # fmt: skip
        torch.testing.assert_close(a.double(), b.double(), **tol)
    with torch.no_grad():  # inference: the kernel
        scaled_dot_product_attention(q, k, v, causal=True, **alignment)
    padding = torch.ones(2, 90, dtype=torch.bool)
    padding[1, -5:] = False
    scaled_dot_product_attention(q, k, v, causal=True, attention_mask=padding, **alignment)
    assert len(calls) == 1


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_only_the_gradients_asked_for_are_computed_on_both_routes(p):
    """Only k requires grad: the fast backward and the create_graph one give the same dk, and
    the formula's (float64)."""
    q, k, v = _inputs((3,), 80, 80, 4, 5, seed=12)
    q, v = q.detach(), v.detach()
    grad = torch.randn(3, 80, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(8)
    (fast,) = torch.autograd.grad(causal_blocks(q, k, v, 0.5, p), k, grad)
    torch.manual_seed(8)
    (twice,) = torch.autograd.grad(causal_blocks(q, k, v, 0.5, p), k, grad, create_graph=True)
    torch.manual_seed(8)
    kept = causal_blocks(q, k.detach(), torch.eye(80, dtype=torch.float64).expand(3, 80, 80),
                         0.5, p) != 0  # fmt: skip
    below = torch.ones(80, 80, dtype=torch.bool).tril()
    scores = (q @ k.transpose(-2, -1) * 0.5).masked_fill(~below, -math.inf)
    want = (torch.softmax(scores, -1) * kept * dropout_scale(p)) @ v
    (expected,) = torch.autograd.grad(want, k, grad)
    torch.testing.assert_close(fast, expected, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(twice, expected, atol=1e-12, rtol=1e-12)


def test_torch_func_grad_goes_through_autograds_operations():
    """torch.func.grad (functorch) cannot run a Function without setup_context: the same blocks
    then go through autograd's operations, with the same answer."""
    q, k, v = _inputs((2,), 70, 70, 3, 3, seed=13)

    def loss(q):
        torch.manual_seed(3)
        return causal_blocks(q, k.detach(), v.detach(), 0.6, 0.2).square().sum()

    got = torch.func.grad(loss)(q.detach())
    (want,) = torch.autograd.grad(loss(q), q)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("p", [1.0, 1 - 1e-9])
def test_p_one_keeps_nothing_draws_nothing_and_has_zero_gradients(p):
    q, k, v = _inputs((2,), 70, 70, 3, 3, seed=14)
    state = torch.get_rng_state()
    out = causal_blocks(q, k, v, 0.6, p)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(out, torch.zeros_like(out))
    for g in torch.autograd.grad(out.sum(), (q, k, v)):
        assert torch.equal(g, torch.zeros_like(g))


def test_no_queries_give_an_empty_output():
    q, k, v = torch.ones(2, 0, 4, requires_grad=True), torch.ones(2, 5, 4), torch.ones(2, 5, 3)
    out = causal_blocks(q, k, v, 0.5, 0.1)
    assert out.shape == (2, 0, 3)
    out.sum().backward()
    assert q.grad.shape == q.shape
