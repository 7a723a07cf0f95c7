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

With a :class:`HiddenBuffers` (``nn.FeedForward`` in training mode keeps one), the memory of h
and a goes back to it once the backward is done with it, and the next forward writes h and a
into it: no fresh pages in forward either (the bias broadcast that starts ``addmm`` took ~7 ms
per layer into fresh memory). It holds at most two tensors, what one forward needs, of the
last shape handed back, and never memory anything else can see: h, a, da and dh do not leave
the Function.

h and a are kept on the Function (not saved with ``save_for_backward``, whose version check
would refuse the second backward of ``retain_graph``): the first backward consumes them, and a
second one recomputes them from the saved x, W_1 and b_1. With ``create_graph`` the gradients
go through autograd's own operations, so second derivatives stay exact; under ``torch.func``
the whole network does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.functional.autocast import cast_as_autocast
from attnlab.functional.checks import needs_autograd_ops
from attnlab.functional.linear import linear

__all__ = ["ACTIVATIONS", "HiddenBuffers", "feed_forward"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact (erf), BERT's
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
}
# the GELUs above, as aten names their forms
_GELU_APPROXIMATION = {"gelu": "none", "gelu_tanh": "tanh"}


class HiddenBuffers:
    """Memory for the hidden layer's h and a, handed back by one backward and reused by the next
    forward: at most two tensors, of the shape (dtype, device) handed back last (a batch of
    another length replaces them). Copies of it (``copy.deepcopy``, pickling) start empty."""

    def __init__(self) -> None:
        self._free: list[Tensor] = []

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A tensor of ``shape`` with like's dtype and device: a handed-back one, or a new one."""
        free = self._free  # all of one kind (give keeps it so)
        if free and _kind(free[-1]) == (tuple(shape), like.dtype, like.device):
            with contextlib.suppress(IndexError):  # another thread took it first
                return free.pop()
        return torch.empty(shape, dtype=like.dtype, device=like.device)

    def give(self, *tensors: Tensor) -> None:
        """Hand tensors back: nothing else may use them any more."""
        free = self._free
        for t in tensors:
            if free and _kind(free[0]) != _kind(t):
                free.clear()
            if len(free) < 2:
                free.append(t)

    def clear(self) -> None:
        self._free.clear()

    def __len__(self) -> int:
        return len(self._free)

    def __deepcopy__(self, memo: dict) -> HiddenBuffers:
        return HiddenBuffers()

    def __getstate__(self) -> dict:
        return {"_free": []}


def _kind(t: Tensor) -> tuple:
    return tuple(t.shape), t.dtype, t.device


def feed_forward(x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None,
                 activation: str, buffers: HiddenBuffers | None = None) -> Tensor:  # fmt: skip
    """act(x·W_1ᵀ + b_1)·W_2ᵀ + b_2 with the backward above. x (..., D), W_1 (d_ff, D), W_2
    (D, d_ff), biases (d_ff,) and (D,) or None → (..., D). Under autocast the operands are cast
    as autocast casts a linear layer's. ``buffers``: where h and a come from and go back to."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    lead = x.shape[:-1]
    (x2, *params), autocast_off = cast_as_autocast(x.device.type, (x, w1, b1, w2, b2))
    with autocast_off:
        x2 = x2.reshape(-1, x.shape[-1])  # (rows, D)
        if needs_autograd_ops(x2, *params):  # torch.func or forward-mode AD: autograd's ops
            y = _autograd_network(x2, *params, activation)
        else:
            y = _FeedForward.apply(x2, *params, activation, buffers)  # (rows, D)
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
    approximate = _GELU_APPROXIMATION[activation]
    return torch.ops.aten.gelu_backward.grad_input(da, h, approximate=approximate, grad_input=h)


def _hidden(x: Tensor, w1: Tensor, b1: Tensor | None, activation: str,
            buffers: HiddenBuffers | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """h = x·W_1ᵀ + b_1 and a = act(h), (rows, d_ff) each; written into ``buffers``' memory
    when given."""
    if buffers is None:
        h = linear(x, w1, b1)
        return h, ACTIVATIONS[activation](h)
    shape = (x.shape[0], w1.shape[0])
    h, a = buffers.take(shape, x), buffers.take(shape, x)
    if b1 is None:
        torch.mm(x, w1.t(), out=h)
    else:
        torch.addmm(b1, x, w1.t(), out=h)
    if activation == "relu":
        torch.clamp(h, min=0, out=a)
    else:
        torch.ops.aten.gelu.out(h, approximate=_GELU_APPROXIMATION[activation], out=a)
    return h, a


class _FeedForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None,
                activation: str, buffers: HiddenBuffers | None) -> Tensor:  # fmt: skip
        h, a = _hidden(x, w1, b1, activation, buffers)  # (rows, d_ff) each
        ctx.save_for_backward(x, w1, b1, w2, b2)
        ctx.hidden = (h, a)  # consumed by the first backward
        ctx.activation, ctx.buffers = activation, buffers
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
            ctx.hidden = None  # not read on this route: h and a are freed now
            return (*(next(grads) if need else None for need in needed), None, None)
        if ctx.hidden is None:  # a second backward (retain_graph): h and a afresh
            ctx.hidden = _hidden(x, w1, b1, ctx.activation, ctx.buffers)
        (h, a), ctx.hidden = ctx.hidden, None
        need_x, need_w1, need_b1, need_w2, need_b2 = needed
        dw2 = torch.mm(g.t(), a) if need_w2 else None  # (D, d_ff)
        db2 = g.sum(0) if need_b2 else None
        dx = dw1 = db1 = None
        if need_x or need_w1 or need_b1:
            dh = _activation_grad_(torch.mm(g, w2, out=a), h, ctx.activation)  # (rows, d_ff)
            dx = torch.mm(dh, w1) if need_x else None  # (rows, D)
            dw1 = torch.mm(dh.t(), x) if need_w1 else None  # (d_ff, D)
            db1 = dh.sum(0) if need_b1 else None
        if ctx.buffers is not None:
            ctx.buffers.give(h, a)  # nothing reads them any more
        return dx, dw1, db1, dw2, db2, None, None
