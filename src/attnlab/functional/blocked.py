"""Exact attention that also returns the weights, one cache-sized block at a time.

When the weights are asked for, the (..., Lq, Lk) weights tensor has to be written anyway, so
the cheapest exact route is to make it the *only* N×N memory and to do all the work while each
block of it is still in cache:

    for each block of query rows (all heads at once when a head's weights are small):
        S = (q·scale)·kᵀ           one GEMM straight into the block of the result  (rows, Lk)
        S += bias                  mask, or the causal triangle of the diagonal block
        W = softmax(S)             in place, in cache
        out[rows] = W·v            one GEMM reading the block while it is still hot

Every element of the weights is written once to memory and read from cache: the flash kernel's
second pass over keys is replaced by the value GEMM. A causal block computes only the keys up
to its last row (rows × r1, not rows × Lk), into a small scratch buffer that is reused across
blocks, and the result is allocated zeroed so the keys after the diagonal need no further
writing. Besides the result, memory is O(N·d) plus one block; a mask, if given, costs its own
size again (its float form and the check for rows without keys). Fully masked query rows get
weights 0 and output 0, as on every attnlab kernel.

Shapes: q (B, H, Lq, d_k), k (B, H, Lk, d_k), v (B, H, Lk, d_v), bias broadcastable to
(B, H, Lq, Lk). ``causal`` is the square lower triangle (Lq == Lk); other causal rules arrive in
``bias``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.functional.backends import private_softmax
from attnlab.functional.masks import causal as causal_mask

__all__ = ["DEFAULT_BLOCKING", "Blocking", "attention_with_weights", "weights_dtype"]


@dataclass(frozen=True)
class Blocking:
    """Block sizes (measured on 2 cores with 1 MB L2 each and a 32 MB L3; see
    docs/benchmarks.md). Tests shrink them to run every route on small inputs."""

    block_bytes: int = 4 << 20  # scores per non-causal block: in L3 with room for q, k, v
    min_rows: int = 64  # fewer query rows per GEMM and the GEMMs lose efficiency
    causal_whole_bytes: int = 1 << 20  # causal heads up to this size: whole planes + triangle
    causal_rows: int = 256  # query rows per causal block; wastes (rows/2)² scores per block
    causal_scratch_bytes: int = 16 << 20  # several heads per causal block, in L3


DEFAULT_BLOCKING = Blocking()


def weights_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype weights are computed (and returned) in: float32 for half precision inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def attention_with_weights(
    q: Tensor,  # (B, H, Lq, d_k)
    k: Tensor,  # (B, H, Lk, d_k)
    v: Tensor,  # (B, H, Lk, d_v)
    bias: Tensor | None,  # float, broadcastable to (B, H, Lq, Lk); -inf = masked
    *,
    causal: bool,
    scale: float,
    softcap: float | None = None,
    blocking: Blocking = DEFAULT_BLOCKING,
) -> tuple[Tensor, Tensor]:
    """Exact softmax(cap(q·kᵀ·scale) + bias)·v and its weights: ``(B, H, Lq, d_v), (B, H, Lq, Lk)``,
    where cap(s) = softcap·tanh(s / softcap) when ``softcap`` is given.

    Half precision inputs are computed in float32; the output comes back in the input's dtype,
    the weights stay float32 (as exact as the arithmetic allows). No autograd: callers that need
    gradients use the reference kernel.
    """
    dtype = weights_dtype(q.dtype)
    B, H = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    lq, lk, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    if B * H * lq * lk == 0:  # nothing to attend (or nobody asking): zeros of the right shapes
        out = torch.zeros(B, H, lq, d_v, dtype=q.dtype, device=q.device)
        return out, torch.zeros(B, H, lq, lk, dtype=dtype, device=q.device)
    d_k = q.shape[-1]
    with torch.no_grad():
        q3 = (q.to(dtype) * scale).expand(B, H, lq, d_k).reshape(B * H, lq, d_k)
        k3 = k.to(dtype).expand(B, H, lk, d_k).reshape(B * H, lk, d_k)
        v3 = v.to(dtype).expand(B, H, lk, d_v).reshape(B * H, lk, d_v)
        planes = _bias_planes(bias, B, H, lq, lk)
        out = torch.empty(B * H, lq, d_v, dtype=dtype, device=q.device)
        itemsize = dtype.itemsize
        plane_bytes = lq * lk * itemsize
        b = blocking
        whole = plane_bytes <= (b.causal_whole_bytes if causal else b.block_bytes)
        # causal row blocks never write the keys after a block's last row: those stay zero
        alloc = torch.zeros if causal and not whole else torch.empty
        weights = alloc(B * H, lq, lk, dtype=dtype, device=q.device)
        if whole:
            heads = max(1, b.block_bytes // plane_bytes)
            _whole_heads(q3, k3, v3, planes, weights, out, heads, causal, softcap)
        elif not causal:
            rows = min(lq, max(b.min_rows, b.block_bytes // (lk * itemsize)))
            _row_blocks(q3, k3, v3, planes, weights, out, rows, softcap)
        else:
            rows = min(lq, b.causal_rows)
            heads = max(1, b.causal_scratch_bytes // (rows * lk * itemsize))
            _causal_row_blocks(q3, k3, v3, planes, weights, out, rows, heads, softcap)
        if planes is not None:
            _zero_rows_without_keys(bias, causal, weights, out, B, H, lq, lk)
    return out.view(B, H, lq, d_v).to(q.dtype), weights.view(B, H, lq, lk)


def _whole_heads(
    q3: Tensor, k3: Tensor, v3: Tensor, planes: list[Tensor] | None,
    weights: Tensor, out: Tensor, heads: int, causal: bool, softcap: float | None,
) -> None:  # fmt: skip
    """Small heads: ``heads`` whole (Lq, Lk) planes per block, a contiguous slice of the result.
    Causal planes are computed whole and the triangle added: cheaper than blocking when small."""
    lq, lk = q3.shape[1], k3.shape[1]
    triangle = _triangle(lq, lk, q3) if causal else None
    for h0 in range(0, q3.shape[0], heads):
        h1 = min(q3.shape[0], h0 + heads)
        s = weights[h0:h1]  # (heads, Lq, Lk)
        torch.bmm(q3[h0:h1], k3[h0:h1].transpose(1, 2), out=s)
        _cap_(s, softcap)
        if planes is not None:
            for i in range(h0, h1):
                s[i - h0].add_(planes[i])
        if triangle is not None:
            s.add_(triangle)
        _softmax_(s)
        torch.bmm(s, v3[h0:h1], out=out[h0:h1])


def _row_blocks(
    q3: Tensor, k3: Tensor, v3: Tensor, planes: list[Tensor] | None,
    weights: Tensor, out: Tensor, rows: int, softcap: float | None,
) -> None:  # fmt: skip
    """Large heads, not causal: ``rows`` query rows of one head per block, a contiguous slice of
    the result that the score GEMM writes straight into."""
    lq = q3.shape[1]
    for i in range(q3.shape[0]):
        kt = k3[i].transpose(0, 1)  # (d_k, Lk)
        for r0 in range(0, lq, rows):
            r1 = min(lq, r0 + rows)
            s = weights[i, r0:r1]  # (n, Lk)
            torch.mm(q3[i, r0:r1], kt, out=s)
            _cap_(s, softcap)
            if planes is not None:
                s.add_(planes[i][r0:r1])
            _softmax_(s)
            torch.mm(s, v3[i], out=out[i, r0:r1])


def _causal_row_blocks(
    q3: Tensor, k3: Tensor, v3: Tensor, planes: list[Tensor] | None,
    weights: Tensor, out: Tensor, rows: int, heads: int, softcap: float | None,
) -> None:  # fmt: skip
    """Large causal heads: ``rows`` query rows of ``heads`` heads per block. Rows [r0, r1) see
    keys [0, r1) only: the block (heads, n, r1) is computed in a reused scratch buffer (a GEMM
    per head group keeps both threads busy) and copied into the zeroed result."""
    bh, lq, lk = q3.shape[0], q3.shape[1], k3.shape[1]
    scratch = torch.empty(heads * rows * lk, dtype=q3.dtype, device=q3.device)
    triangle = _triangle(rows, rows, q3)  # for the diagonal (n, n) part of a block
    kt = k3.transpose(1, 2)  # (BH, d_k, Lk)
    for h0 in range(0, bh, heads):
        h1 = min(bh, h0 + heads)
        for r0 in range(0, lq, rows):
            r1 = min(lq, r0 + rows)
            n = r1 - r0
            s = scratch[: (h1 - h0) * n * r1].view(h1 - h0, n, r1)  # (heads, n, r1)
            torch.bmm(q3[h0:h1, r0:r1], kt[h0:h1, :, :r1], out=s)
            _cap_(s, softcap)
            if planes is not None:
                for i in range(h0, h1):
                    s[i - h0].add_(planes[i][r0:r1, :r1])
            s[..., r0:r1].add_(triangle[:n, :n])
            _softmax_(s)
            weights[h0:h1, r0:r1, :r1].copy_(s)
            torch.bmm(s, v3[h0:h1, :r1], out=out[h0:h1, r0:r1])


def _triangle(lq: int, lk: int, like: Tensor) -> Tensor:
    """(Lq, Lk) additive causal mask, start-aligned: −inf where key j > query i."""
    full = torch.full((lq, lk), float("-inf"), dtype=like.dtype, device=like.device)
    return full.triu_(1)


def _cap_(s: Tensor, softcap: float | None) -> None:
    """Softcap in place: s → softcap·tanh(s / softcap) (Gemma 2); nothing without one."""
    if softcap is not None:
        s.div_(softcap).tanh_().mul_(softcap)


def _softmax_(s: Tensor) -> None:
    """Row softmax in place on a contiguous block; rows that are all −inf become NaN here and
    are zeroed by the caller. PyTorch's private ``torch._softmax`` does it in one pass (it reads
    each row before writing it); without it, three passes of public in-place operations."""
    softmax = private_softmax()
    if softmax is not None:
        softmax(s, -1, False, out=s)
        return
    s.sub_(s.amax(dim=-1, keepdim=True)).exp_()
    s.div_(s.sum(dim=-1, keepdim=True))


def _bias_planes(bias: Tensor | None, B: int, H: int, lq: int, lk: int) -> list[Tensor] | None:
    """One (Lq, Lk) view of the bias per flattened (b, h), broadcasting without copying."""
    if bias is None:
        return None
    full = bias.expand(B, H, lq, lk)
    return [full[i // H, i % H] for i in range(B * H)]


def _zero_rows_without_keys(
    bias: Tensor, causal: bool, weights: Tensor, out: Tensor, B: int, H: int, lq: int, lk: int
) -> None:
    """Query rows whose every key is masked (by the bias, or by the bias and the causal
    triangle together): weights and output 0 instead of NaN."""
    visible = bias > float("-inf")  # broadcastable to (B, H, Lq, Lk)
    if causal:
        visible = visible & causal_mask(lq, lk, device=bias.device)  # Lq == Lk: start-aligned
    empty = ~visible.any(dim=-1)  # broadcastable to (B, H, Lq)
    if not bool(empty.any()):
        return
    rows = empty.expand(B, H, lq).reshape(B * H, lq)
    weights[rows] = 0.0
    out[rows] = 0.0
