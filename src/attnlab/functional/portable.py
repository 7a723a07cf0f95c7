"""The portable route: exact attention from public PyTorch operations only, on any device.

Without weights the output comes from ``F.scaled_dot_product_attention``. Where exact weights
(or a capture's log-sum-exp) are wanted, :func:`attention_rows` runs one block of query rows at a
time, so besides the weights nothing of size N×N is held:

    for each block of query rows:
        S = cap(q·kᵀ·scale) + bias          (B, H, rows, Lk)
        lse = logsumexp(S)                   (B, H, rows)
        W = exp(S − lse)                     the exact softmax, rows that see no key → 0
        out[rows] = W·v

Dimension legend: B batch, H heads, Lq queries, Lk keys, d_k / d_v head sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.functional.bias import AttentionBias
from attnlab.functional.blocked import weights_dtype
from attnlab.functional.causal_blocks import causal_blocks, causal_triangle
from attnlab.functional.checks import needs_grad
from attnlab.functional.dropout import dropout

__all__ = ["attention_rows", "explicit_training", "sdpa"]

_BLOCK_BYTES = 64 * 2**20  # one block of scores


def attention_rows(
    q: Tensor,  # (B, H, Lq, d_k)
    k: Tensor,  # (B, H, Lk, d_k)
    v: Tensor,  # (B, H, Lk, d_v)
    bias: AttentionBias,
    *,
    scale: float,
    need_weights: bool,
    need_output: bool = True,
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """``(output (B, H, Lq, d_v) or None, lse (B, H, Lq), weights (B, H, Lq, Lk) or None)``.

    Half precision is computed in float32 (weights stay float32, the output returns to the
    input's dtype). A row with no visible key gets lse +inf, so exp(s − lse) is 0 there. No
    autograd (callers that need gradients use the reference kernel)."""
    dtype = weights_dtype(q.dtype)
    B, H = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    lq, lk = q.shape[-2], k.shape[-2]
    device = q.device
    lse = torch.empty(B, H, lq, dtype=dtype, device=device)
    out = torch.zeros(B, H, lq, v.shape[-1], dtype=dtype, device=device) if need_output else None
    rows = max(1, _BLOCK_BYTES // max(1, B * H * lk * dtype.itemsize))
    blocks = need_weights and not 0 < lq <= rows  # several blocks fill one result (or none)
    weights = torch.empty(B, H, lq, lk, dtype=dtype, device=device) if blocks else None
    with torch.no_grad():
        qs, kt, v_ = (q.to(dtype) * scale), k.to(dtype).transpose(-2, -1), v.to(dtype)
        for r0 in range(0, lq, rows):
            r1 = min(lq, r0 + rows)
            s = torch.matmul(qs[..., r0:r1, :], kt)  # a fresh (B|1, H|1, rows, Lk) tensor
            if s.shape != (B, H, r1 - r0, lk):  # q or k broadcast: own every element
                s = s.expand(B, H, r1 - r0, lk).clone()
            bias.cap_(s)  # (B, H, rows, Lk)
            added = bias.dense(dtype, device, rows=slice(r0, r1))
            if added is not None:
                s.add_(added)
            block_lse = torch.logsumexp(s, dim=-1)  # (B, H, rows); −inf where nothing is seen
            block_lse.masked_fill_(block_lse == float("-inf"), float("inf"))
            lse[..., r0:r1] = block_lse
            if not (need_output or need_weights):
                continue
            s.sub_(block_lse[..., None]).exp_()  # exact weights of these rows
            if need_weights and r1 - r0 == lq:
                weights = s  # one block holds every row: it is the result
            elif weights is not None:
                weights[..., r0:r1, :] = s
            if out is not None:
                out[..., r0:r1, :] = torch.matmul(s, v_)
    return None if out is None else out.to(q.dtype), lse, weights


def sdpa(
    q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias, *, scale: float, dropout: float
) -> Tensor:
    """``F.scaled_dot_product_attention`` with the bias as PyTorch takes it (``is_causal`` when
    the causal rule is start-aligned, else one float mask); rows that see no key give 0, not
    PyTorch's math-path NaN. Keeps autograd."""
    is_causal, rest = bias.split_start_causal()
    n_lead = q.dim() - 2
    added = rest.dense(q.dtype, q.device, n_lead=n_lead)
    if is_causal and added is not None:  # PyTorch refuses a mask together with is_causal
        added = bias.dense(q.dtype, q.device, n_lead=n_lead)
        is_causal = False
    if dropout > 0 or explicit_training(q, k, v, bias) is not None:
        out = _explicit(q, k, v, added, is_causal, scale, dropout)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=added, is_causal=is_causal,
                                             scale=scale)  # fmt: skip
    visible = None if added is None else bias.visible(q.device, n_lead=n_lead)
    if visible is None:
        return out
    seen = visible.any(dim=-1, keepdim=True)  # (..., Lq, 1)
    if q.device.type == "cpu" and bool(seen.all()):  # elsewhere the check would sync
        return out
    return torch.where(seen, out, torch.zeros((), dtype=out.dtype, device=out.device))


def explicit_training(q: Tensor, k: Tensor, v: Tensor, bias: AttentionBias) -> str | None:
    """Why training on CPU takes the explicit route instead of PyTorch's flash kernel, or None
    where the kernel is faster. Forward + backward on views of a (32, T, 3·192) Q/K/V
    projection, 4 heads, causal (``python -m benchmarks.training --parts``, docs/benchmarks.md):

    * start-aligned causal attention with nothing else added, in any dtype, by
      :mod:`attnlab.functional.causal_blocks`: float32 without dropout, two threads
      (``--parts --threads 2``), T = 128: 11.7 ms against the kernel's 14.2; T = 512: 118
      against 175 (a whole GPT training step at T = 512 took 1.18× as long through the kernel);
    * other masks in half precision: bfloat16, T = 128, one thread: 14.8 ms against 50.9."""
    if q.device.type != "cpu" or not needs_grad(q, k, v):
        return None
    is_causal, rest = bias.split_start_causal()
    if _by_blocks(q, k, v, is_causal, nothing_added=rest.is_empty):
        return "causal training: attnlab's causal blocks beat the kernel"
    if q.dtype in (torch.bfloat16, torch.float16):
        return f"training in {q.dtype}: the explicit softmax beats the kernel"
    return None


def _by_blocks(q: Tensor, k: Tensor, v: Tensor, is_causal: bool, *, nothing_added: bool
               ) -> bool:  # fmt: skip
    """Start-aligned causal attention with nothing else added and equal leading dimensions:
    what :func:`~attnlab.functional.causal_blocks.causal_blocks` computes."""
    return is_causal and nothing_added and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]


def _explicit(
    q: Tensor, k: Tensor, v: Tensor, added: Tensor | None, is_causal: bool, scale: float,
    p: float,
) -> Tensor:  # fmt: skip
    """softmax(q·kᵀ·scale + bias), dropout p on the weights, times v: what PyTorch's SDPA runs
    on CPU when dropout is on (its math route), with the dropout mask drawn from random bits
    (:mod:`attnlab.functional.dropout`), a fraction of ``bernoulli_``'s cost. The softmax runs
    in float32 for half-precision inputs. Differentiable (start-aligned causal attention through
    :mod:`attnlab.functional.causal_blocks`, which has its own backward).
    (…, Lq, d_k) × (…, Lk, d_k) → (…, Lq, d_v)."""
    if _by_blocks(q, k, v, is_causal, nothing_added=added is None) and q.shape[-2]:
        return causal_blocks(q, k, v, scale, p)
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # (…, Lq, Lk)
    if is_causal:  # start-aligned: −inf where key j > query i
        lq, lk = q.shape[-2], k.shape[-2]
        scores.add_(causal_triangle(0, lq, lk, q.dtype, q.device))
    if added is not None:
        scores.add_(added)
        # A row that sees no key would give NaN weights, and NaN gradients even where the
        # caller zeroes its output: give it finite scores (its output is zeroed by sdpa).
        empty = scores.amax(dim=-1, keepdim=True) == float("-inf")  # (…, Lq, 1)
        scores.masked_fill_(empty, 0.0)
    wide = torch.promote_types(scores.dtype, torch.float32)  # float64 stays float64
    weights = torch.softmax(scores, dim=-1, dtype=wide).to(v.dtype)
    return torch.matmul(dropout(weights, p), v)
