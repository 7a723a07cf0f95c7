"""Start-aligned causal attention with dropout by blocks of query rows, with its own backward:
what a GPT's training step runs on CPU, with or without dropout, in every dtype.

Query rows [r0, r1) see keys [0, r1) only, so nothing above the diagonal blocks is computed,
held for backward or dropped out (a quarter of the square at 128 positions, nearly half at long
contexts). For each block, with M the dropout's keep mask (0/1) and s = 1/(1 − p'):

    S = triangle + scale·q·kᵀ          (N, rows, seen)   the triangle is −inf above the diagonal
    W = softmax(S)
    out[rows] = s·(W ⊙ M)·v            (N, rows, d_v)

and backward, from g = ∂L/∂out[rows]:

    dW = s·(g·vᵀ) ⊙ M                  dv += s·(W ⊙ M)ᵀ·g
    dS = W ⊙ (dW − rowsum(dW ⊙ W))     in place of dW
    dq[rows] = scale·dS·k              dk += scale·dSᵀ·q[rows]

Only W and M's 16-bit random numbers are kept for backward, where autograd would keep W, the
float mask and W ⊙ M; the softmax's gradient runs in place, and the dropout scale is
applied to the (rows, d) outputs, not to the (rows, seen) weights. Forward + backward on views
of a (32, T, 3·192) Q/K/V projection against the same blocks through autograd (``python -m
benchmarks.training --parts``, one thread): float32, T = 128, dropout 0.1: 26.9 ms against
28.8; T = 512: 286 against 365; bfloat16 about equal (20.2 against 19.5). Without dropout they
beat PyTorch's flash kernel in training (two threads, T = 512: 118 against 175 ms).

Dimension legend: outer the leading dimensions but the heads (or all of them, heads = 1), Lq
queries, Lk keys, d_k / d_v head sizes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from attnlab.functional.autocast import cast_as_autocast
from attnlab.functional.checks import needs_autograd_ops
from attnlab.functional.dropout import dropout_scale, kept_from_bits, random16

__all__ = ["causal_blocks", "causal_triangle"]

ROWS = 64  # query rows per block (32 and 128 were slower at 128–512 positions)


def causal_blocks(q: Tensor, k: Tensor, v: Tensor, scale: float, p: float) -> Tensor:
    """softmax(q·kᵀ·scale + causal triangle), dropout p (:mod:`attnlab.functional.dropout`'s
    mask) on the weights, times v; key j is visible to query i when j ≤ i. Differentiable in q,
    k and v, also twice (a second derivative goes through autograd's operations with the same
    masks). Under autocast q, k and v are cast to its dtype first (the backward runs without
    autocast). (…, Lq, d_k) × (…, Lk, d_k) × (…, Lk, d_v) → (…, Lq, d_v); the leading
    dimensions of q, k and v are equal.

    Heads split off a (B, T, H·d) projection (float32 or float64 (B, H, T, d) views whose heads
    are interleaved in memory) are looped over where they are, and the output is stored
    heads-last, (…, Lq, H, d_v) in memory, so ``out.transpose(-3, -2).reshape(…, Lq, H·d_v)``,
    the concatenation of heads, is a view; the gradients of q, k and v likewise."""
    lead, lq, d_v = q.shape[:-2], q.shape[-2], v.shape[-1]
    dropout_scale(p)  # checks p before any work
    if lq == 0:
        return torch.matmul(torch.matmul(q, k.transpose(-2, -1)), v)  # empty, differentiable
    (q, k, v), autocast_off = cast_as_autocast(q.device.type, (q, k, v))
    q4, k4, v4 = _by_heads(q, k, v)  # (outer, heads, L, d)
    with autocast_off:
        if needs_autograd_ops(q4, k4, v4):  # torch.func or forward-mode AD: autograd's ops
            out = _autograd_blocks(q4, k4, v4, _draw_bits(q4, k4, p), scale, p)
        else:
            # (outer, Lq, heads, d_v), transposed outside the Function: PyTorch refuses
            # in-place changes to views a custom Function returns (a hook's ablation)
            out = _CausalBlocks.apply(q4, k4, v4, scale, p).transpose(1, 2)
    return out.reshape(*lead, lq, d_v)  # a view: only the outer dimensions split


def causal_triangle(first: int, rows: int, keys: int, dtype: torch.dtype, device) -> Tensor:
    """The additive causal triangle of query rows first … first + rows − 1 (absolute positions)
    over keys 0 … keys − 1: −inf where key j > query i, else 0. (rows, keys)"""
    triangle = torch.full((rows, keys), float("-inf"), dtype=dtype, device=device)
    return triangle.triu_(first + 1)


def _by_heads(*tensors: Tensor) -> tuple[Tensor, ...]:
    """(outer, heads, L, d) tensors from tensors (…, L, d) with equal leading dimensions. Where
    all of them flatten to (N, L, d) without a copy, or in half precision, heads = 1: one
    batched GEMM per block (copies made where needed). Else (float32 or float64 heads split off
    a (B, T, H·d) projection: (B, H, T, d) views whose heads are interleaved in memory) heads is
    the last leading dimension, looped over: each head's (B, L, d) slice is a strided matrix the
    BLAS takes as it is, where flattening to (B·H, L, d) would copy it. (In bfloat16 the loop
    over strided heads was slower than the copies: 16.7 against 11.9 ms forward + backward,
    ``--parts --threads 2``, T = 128.)"""
    lead = tensors[0].shape[:-2]
    n = math.prod(lead)  # (-1 cannot be inferred when d = 0)
    half = tensors[0].dtype in (torch.float16, torch.bfloat16)
    try:
        return tuple(t.view(n, 1, *t.shape[-2:]) for t in tensors)
    except RuntimeError:  # some tensor does not flatten without a copy
        if half:
            return tuple(t.reshape(n, 1, *t.shape[-2:]) for t in tensors)
        outer = math.prod(lead[:-1])
        return tuple(t.reshape(outer, *t.shape[-3:]) for t in tensors)


def _blocks(lq: int, lk: int) -> list[tuple[int, int, int]]:
    """(r0, r1, seen) per block: rows [r0, r1) see keys [0, seen)."""
    return [(r0, min(lq, r0 + ROWS), min(lq, r0 + ROWS, lk)) for r0 in range(0, lq, ROWS)]


def _draw_bits(q: Tensor, k: Tensor, p: float) -> list[Tensor | None]:
    """Each block's 16-bit random numbers (:func:`attnlab.functional.dropout.random16`), (outer,
    heads, rows, seen), drawn in block order; None for every block when nothing is drawn (p = 0,
    or p' = 1: all dropped)."""
    outer, heads, lq, _ = q.shape
    blocks = _blocks(lq, k.shape[2])
    if p == 0 or dropout_scale(p) == 0:
        return [None] * len(blocks)
    return [random16((outer, heads, r1 - r0, seen), q.device) for r0, r1, seen in blocks]


def _scores(q: Tensor, k: Tensor, r0: int, r1: int, seen: int, scale: float) -> Tensor:
    """triangle + scale·q[rows]·k[:seen]ᵀ of one head, one GEMM. (outer, rows, seen)"""
    triangle = causal_triangle(r0, r1 - r0, seen, q.dtype, q.device)  # (rows, seen)
    return torch.baddbmm(triangle, q[:, r0:r1], k[:, :seen].transpose(1, 2), alpha=scale)


def _heads_last(outer: int, length: int, heads: int, d: int, like: Tensor) -> Tensor:
    """An empty (outer, length, heads, d) tensor, each head's results written into its
    (outer, length, d) slice."""
    return torch.empty(outer, length, heads, d, dtype=like.dtype, device=like.device)


class _CausalBlocks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float, p: float) -> Tensor:
        # q (outer, heads, Lq, d_k), k (outer, heads, Lk, d_k), v (outer, heads, Lk, d_v)
        outer, heads, lq, _ = q.shape
        keep_scale = dropout_scale(p)
        out = _heads_last(outer, lq, heads, v.shape[-1], v)  # (outer, Lq, heads, d_v)
        weights, bits = [], _draw_bits(q, k, p)
        for (r0, r1, seen), block_bits in zip(_blocks(lq, k.shape[2]), bits, strict=True):
            for h in range(heads):
                w = _softmax(_scores(q[:, h], k[:, h], r0, r1, seen, scale))  # (outer, rows, seen)
                weights.append(w)
                if block_bits is not None:
                    w = kept_from_bits(block_bits[:, h], p, w.dtype).mul_(w)  # W ⊙ M
                _accumulate(out[:, r0:r1, h], w, v[:, h, :seen], 1.0, True)  # (outer, rows, d_v)
        if p > 0:
            out.mul_(keep_scale)  # 0 when p' = 1: nothing is kept
        ctx.save_for_backward(q, k, v, *weights, *(b for b in bits if b is not None))
        ctx.scale, ctx.p = scale, p
        return out  # (outer, Lq, heads, d_v)

    @staticmethod
    def backward(ctx, d_out: Tensor) -> tuple[Tensor | None, ...]:  # (outer, Lq, heads, d_v)
        q, k, v, *saved = ctx.saved_tensors
        outer, heads, lq, d_k = q.shape
        lk = k.shape[2]
        blocks = _blocks(lq, lk)
        weights, drawn = saved[: len(blocks) * heads], saved[len(blocks) * heads :]
        bits = drawn if drawn else [None] * len(blocks)
        scale, p = ctx.scale, ctx.p
        need_q, need_k, need_v = ctx.needs_input_grad[:3]
        keep_scale = dropout_scale(p)
        if keep_scale == 0:  # p' = 1: the output is 0 whatever q, k and v
            return (*(torch.zeros_like(t) if need else None
                      for t, need in zip((q, k, v), (need_q, need_k, need_v), strict=True)),
                    None, None)  # fmt: skip
        if torch.is_grad_enabled():  # create_graph: this gradient will be differentiated
            return (*_autograd_grads(ctx.needs_input_grad[:3], (q, k, v), bits,
                                     d_out.transpose(1, 2), scale, p), None, None)  # fmt: skip
        # ∂L/∂S is linear in ∂L/∂W: the dropout scale s goes onto dv, dq and dk (alpha), not
        # onto a fresh copy of d_out (a fresh tensor costs page faults, ~3 ms for 4 MB on two
        # threads here).
        dq = _heads_last(outer, lq, heads, d_k, q) if need_q else None  # (outer, Lq, heads, d_k)
        dk = _heads_last(outer, lk, heads, d_k, k) if need_k else None
        dv = _heads_last(outer, lk, heads, v.shape[-1], v) if need_v else None
        last_seen = blocks[-1][2]  # the most keys any row sees; later keys get no gradient
        for total in (dk, dv):
            if total is not None and last_seen < lk:
                total[:, last_seen:].zero_()
        # last block first: it sees the most keys, so its dk and dv products initialise them
        for i in reversed(range(len(blocks))):
            r0, r1, seen = blocks[i]
            for h in range(heads):
                w, g = weights[i * heads + h], d_out[:, r0:r1, h]  # g (outer, rows, d_v)
                dw = torch.bmm(g, v[:, h, :seen].transpose(1, 2))  # (outer, rows, seen): ∂L/∂W ÷ s
                dropped = w
                if bits[i] is not None:
                    kept = kept_from_bits(bits[i][:, h], p, w.dtype)
                    dw.mul_(kept)
                    dropped = kept.mul_(w)  # W ⊙ M
                first = i == len(blocks) - 1
                if need_v:
                    _accumulate(dv[:, :seen, h], dropped.transpose(1, 2), g, keep_scale, first)
                ds = _softmax_grad_(dw, w)  # ∂L/∂S ÷ s
                if need_q:
                    _accumulate(dq[:, r0:r1, h], ds, k[:, h, :seen], scale * keep_scale, True)
                if need_k:
                    _accumulate(dk[:, :seen, h], ds.transpose(1, 2), q[:, h, r0:r1],
                                scale * keep_scale, first)  # fmt: skip
        grads = (dq, dk, dv)
        return (*(None if t is None else t.transpose(1, 2) for t in grads), None, None)


def _autograd_blocks(q: Tensor, k: Tensor, v: Tensor, bits: list[Tensor | None], scale: float,
                     p: float) -> Tensor:  # fmt: skip
    """The same blocks through autograd's own operations with the given masks: differentiable
    any number of times, and under torch.func transforms. (outer, heads, Lq, d_v)"""
    heads = []
    for h in range(q.shape[1]):
        blocks = []
        for (r0, r1, seen), block_bits in zip(_blocks(q.shape[2], k.shape[2]), bits, strict=True):
            w = _softmax(_scores(q[:, h], k[:, h], r0, r1, seen, scale))  # (outer, rows, seen)
            if block_bits is not None:
                w = w * kept_from_bits(block_bits[:, h], p, w.dtype)  # W ⊙ M
            blocks.append(torch.bmm(w, v[:, h, :seen]))  # (outer, rows, d_v)
        heads.append(torch.cat(blocks, dim=1))  # (outer, Lq, d_v)
    out = torch.stack(heads, dim=1)  # (outer, heads, Lq, d_v)
    return out * dropout_scale(p) if p > 0 else out  # 0 when p' = 1, as in forward


def _autograd_grads(needed: tuple[bool, ...], qkv: tuple[Tensor, ...], bits: list[Tensor | None],
                    d_out: Tensor, scale: float, p: float) -> list[Tensor | None]:  # fmt: skip
    """The gradients of q, k and v (None where not needed) through :func:`_autograd_blocks`
    with the masks drawn in forward: as many derivatives as the caller takes. d_out (outer,
    heads, Lq, d_v)."""
    with torch.enable_grad():
        out = _autograd_blocks(*qkv, bits, scale, p)
    wanted = [t for t, need in zip(qkv, needed, strict=True) if need]
    grads = iter(torch.autograd.grad(out, wanted, d_out, create_graph=True))
    return [next(grads) if need else None for need in needed]


def _accumulate(total: Tensor, a: Tensor, b: Tensor, alpha: float, first: bool) -> None:
    """total = alpha·a·b when ``first``, else total += alpha·a·b, alpha applied inside the GEMM
    (one rounding in half precision). Into a contiguous total the GEMM writes directly; a
    strided slice of a heads-last result gets the product made apart (PyTorch would multiply
    into a strided batch one matrix at a time)."""
    if total.is_contiguous():
        total.baddbmm_(a, b, beta=0 if first else 1, alpha=alpha)  # beta 0: total's old values
        return  # (uninitialised memory when first) are ignored, NaN included
    product = torch.baddbmm(a.new_zeros(()), a, b, beta=0, alpha=alpha)  # input ignored: beta 0
    if first:
        total.copy_(product)
    else:
        total.add_(product)


def _softmax(s: Tensor) -> Tensor:
    """softmax over the last dimension. PyTorch accumulates half precision in float32: the
    result equals the float32 softmax rounded to s's dtype, without a float32 copy."""
    return torch.softmax(s, dim=-1)


def _softmax_grad_(dw: Tensor, w: Tensor) -> Tensor:
    """The gradient of the scores under w = softmax(s), from dw = ∂L/∂w: w ⊙ (dw − rowsum(dw ⊙
    w)); in place of dw in float32 and float64, through float32 for half precision (its
    rounding would otherwise leave ~2× the error)."""
    if dw.dtype in (torch.float32, torch.float64):
        dw.mul_(w)  # dw ⊙ w
        return dw.addcmul_(w, dw.sum(dim=-1, keepdim=True), value=-1)
    dw_, w_ = dw.float(), w.float()
    return (w_ * (dw_ - (dw_ * w_).sum(dim=-1, keepdim=True))).to(w.dtype)
