"""The position-wise feed-forward network y = act(x·W_1ᵀ + b_1)·W_2ᵀ + b_2 for training, with a
backward that writes its largest gradients into memory the forward pass already touched.

With h = x·W_1ᵀ + b_1 and a = act(h), both (rows, d_ff), and g = ∂L/∂y (rows, D):

    dW_2 = gᵀ·a          db_2 = Σ_rows g
    da   = g·W_2         written into a's memory: a is not needed once dW_2 is computed
    dh   = act′(h) ⊙ da  written into h's memory
    dW_1 = dhᵀ·x         db_1 = Σ_rows dh
    dx   = dh·W_1

Autograd computes the same products but allocates da and dh afresh: two (rows, d_ff) tensors per
layer and step, the largest of a GPT's backward pass, and on these machines fresh memory of that
size faults its pages in on first touch, inside the GEMM and the activation's backward (``da =
g·W_2`` took ~14 ms per layer in a shakespeare-char training step against ~7 ms for the same
product into reused memory; 2 threads). Numbers are those of autograd's operations (the same
kernels on the same operands).

h and a are kept on the Function (not saved with ``save_for_backward``, whose version check
would refuse the second backward of ``retain_graph``): the first backward consumes them, and a
second one recomputes them from the saved x, W_1 and b_1. With ``create_graph`` the gradients
go through autograd's own operations, so second derivatives stay exact; under ``torch.func``
the whole network does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.functional.autocast import cast_as_autocast
from attnlab.functional.checks import functorch_active
from attnlab.functional.linear import linear

__all__ = ["ACTIVATIONS", "feed_forward"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf), BERT's
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
}


def feed_forward(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None,
                 activation: str) -> Tensor:  # fmt: skip
    """act(x·W_1ᵀ + b_1)·W_2ᵀ + b_2 with the backward above. x (..., D), W_1 (d_ff, D), W_2
    (D, d_ff), biases (d_ff,) and (D,) or None → (..., D). Under autocast the operands are cast
    as autocast casts a linear layer's."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    lead = x.shape[:-1]
    (x2, *params), autocast_off = cast_as_autocast(x.device.type, (x, w1, b1, w2, b2))
    with autocast_off:
        x2 = x2.reshape(-1, x.shape[-1])  # (rows, D)
        if functorch_active():  # torch.func transforms need setup_context: autograd's ops
            y = _autograd_network(x2, *params, activation)
        else:
            y = _FeedForward.apply(x2, *params, activation)  # (rows, D)
    return y.view(*lead, w2.shape[0])


def _autograd_network(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None,
                      activation: str) -> Tensor:  # fmt: skip
    """The network through autograd's own operations. (rows, D) → (rows, D)"""
    return linear(ACTIVATIONS[activation](linear(x, w1, b1)), w2, b2)


def _activation_grad_(da: Tensor, h: Tensor, activation: str) -> Tensor:
    """act′(h) ⊙ da, written into h (the kernels autograd runs for these activations; each
    element reads only its own h and da, so writing in place is safe)."""
    if activation == "relu":
        return torch.ops.aten.threshold_backward.grad_input(da, h, 0, grad_input=h)
    approximate = "tanh" if activation == "gelu_tanh" else "none"
    return torch.ops.aten.gelu_backward.grad_input(da, h, approximate=approximate, grad_input=h)


class _FeedForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None,
                activation: str) -> Tensor:  # fmt: skip
        h = linear(x, w1, b1)  # (rows, d_ff)
        a = ACTIVATIONS[activation](h)  # (rows, d_ff)
        ctx.save_for_backward(x, w1, b1, w2, b2)
        ctx.hidden = (h, a)  # consumed by the first backward
        ctx.activation = activation
        return linear(a, w2, b2)  # (rows, D)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:  # g (rows, D)
        x, w1, b1, w2, b2 = ctx.saved_tensors
        needed = ctx.needs_input_grad[:5]
        if torch.is_grad_enabled():  # create_graph: this gradient will be differentiated
            with torch.enable_grad():
                y = _autograd_network(x, w1, b1, w2, b2, ctx.activation)
            operands = (x, w1, b1, w2, b2)
            wanted = [t for t, need in zip(operands, needed, strict=True) if need]
            grads = iter(torch.autograd.grad(y, wanted, g, create_graph=True))
            return (*(next(grads) if need else None for need in needed), None)
        if ctx.hidden is None:  # a second backward (retain_graph): h and a afresh
            h = linear(x, w1, b1)
            ctx.hidden = (h, ACTIVATIONS[ctx.activation](h))
        (h, a), ctx.hidden = ctx.hidden, None
        need_x, need_w1, need_b1, need_w2, need_b2 = needed
        dw2 = torch.mm(g.t(), a) if need_w2 else None  # (D, d_ff)
        db2 = g.sum(0) if need_b2 else None
        if not (need_x or need_w1 or need_b1):
            return None, None, None, dw2, db2, None
        dh = _activation_grad_(torch.mm(g, w2, out=a), h, ctx.activation)  # (rows, d_ff), in h
        dx = torch.mm(dh, w1) if need_x else None  # (rows, D)
        dw1 = torch.mm(dh.t(), x) if need_w1 else None  # (d_ff, D)
        db1 = dh.sum(0) if need_b1 else None
        return dx, dw1, db1, dw2, db2, None
