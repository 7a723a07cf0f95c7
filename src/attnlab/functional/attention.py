"""Scaled dot-product attention: one entry point, three kernels.

``scaled_dot_product_attention`` picks a kernel and reports the choice (and why) to shape tracing:

* **fused** – PyTorch's CPU flash kernel (the one ``F.scaled_dot_product_attention`` runs), called
  directly because it also returns the per-row log-sum-exp (LSE). Used whenever weights are not
  asked for. O(N·d) memory.
* **blocked** – weights asked for, no gradient needed: :mod:`attnlab.functional.blocked` computes
  scores, softmax and the value product one cache-sized block of query rows at a time, straight
  into the one (..., Lq, Lk) result tensor: no second N×N temporary, each weight written once.
* **flash+lse** – weights asked for while an observer (``attnlab.inspect``) records the call:
  the fused kernel gives the output and the LSE the observer keeps, then the exact weights
  exp(q·kᵀ·scale + bias − lse) are written into the result.
* **reference** – the readable softmax(QKᵀ)V of :mod:`attnlab.functional.reference`, used when
  weights must carry gradients (of q, k, v or a float mask), or for dropout in training.
  Without weights, d_k ≠ d_v and dropout go to PyTorch's SDPA.

Mask convention: **True = may attend** (SDPA's). Fully masked query rows give output 0 and
weights 0, never NaN, on every kernel.

Dimension legend: B batch, H heads, Lq queries, Lk keys, d_k / d_v head sizes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab import observe
from attnlab.functional.blocked import attention_with_weights, weights_dtype
from attnlab.functional.checks import check_attention_inputs, leading_shape
from attnlab.functional.masks import causal as causal_mask
from attnlab.functional.padded import padded_flash, prefix_lengths
from attnlab.functional.reference import reference_attention

__all__ = ["AttentionResult", "attention_weights_from_lse", "scaled_dot_product_attention"]

_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


class AttentionResult(NamedTuple):
    output: Tensor  # (..., Lq, d_v)
    weights: Tensor | None  # (..., Lq, Lk) when need_weights=True, else None


def scaled_dot_product_attention(
    q: Tensor,  # (..., Lq, d_k)
    k: Tensor,  # (..., Lk, d_k)
    v: Tensor,  # (..., Lk, d_v)
    mask: Tensor | None = None,  # broadcastable to (..., Lq, Lk)
    *,
    causal: bool = False,
    scale: float | None = None,
    dropout: float = 0.0,
    need_weights: bool = False,
    training: bool = False,
) -> AttentionResult:
    """Attention(Q, K, V) = softmax(Q·Kᵀ·scale + mask)·V  (Vaswani et al., 2017, eq. 1).

    Args:
        q, k, v: queries ``(..., Lq, d_k)``, keys ``(..., Lk, d_k)``, values ``(..., Lk, d_v)``;
            leading dimensions broadcast.
        mask: boolean (**True = may attend**, PyTorch SDPA's convention; the opposite of
            ``nn.MultiheadAttention``, see :func:`attnlab.functional.masks.from_masked_out`) or a
            float mask added to the scores; broadcastable to ``(..., Lq, Lk)``.
        causal: query i may attend key j only when j <= i + (Lk − Lq). The mask is **aligned to
            the end**: with a KV cache (Lq < Lk) the new queries see every cached key.
            PyTorch's ``is_causal`` aligns to the start instead; attnlab never does.
        scale: multiplies the scores; default 1/√d_k (unscaled dot products grow with d_k and
            saturate the softmax).
        dropout: dropout probability on the weights, applied only when ``training``.
        need_weights: also return the attention weights ``(..., Lq, Lk)`` (exact, before
            dropout).

    Returns:
        ``AttentionResult(output, weights)``; ``weights`` is None unless ``need_weights``.
        A query row with no visible key gets output 0 and weights 0 (PyTorch's fused kernel
        returns 0, its math path NaN; attnlab returns 0 everywhere).
    """
    check_attention_inputs(q, k, v, mask, scale, dropout)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    drop = dropout if training else 0.0
    lq, lk = q.shape[-2], k.shape[-2]
    if causal and lq == 1:  # one new query at the end sees every key: no mask at all
        causal = False
    elif causal and lq != lk:  # end-aligned causal mask; PyTorch's is_causal is start-aligned
        end_aligned = causal_mask(lq, lk, device=q.device)
        mask = end_aligned if mask is None else _combine(mask, end_aligned)
        causal = False
    elif mask is not None and not causal and _is_causal_bool_mask(mask, lq, lk):
        mask, causal = None, True  # the fast route: is_causal instead of an N×N mask
        observe.emit_step("mask", None, "boolean mask recognised as causal → is_causal")

    if observe.active_observers() and observe.current_module() is None:
        observe.emit_step("q", q)  # inside a module the module reports its own q
    observe.emit_step("k", k)
    observe.emit_step("v", v)
    grads = (q, k, v) if mask is None else (q, k, v, mask)  # a learned float bias counts too
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in grads)
    fusable = q.shape[-1] == v.shape[-1] and drop == 0.0
    if need_weights and not needs_grad and drop == 0.0 and not observe.wants_attention():
        return _blocked(q, k, v, mask, causal, scale)
    if need_weights and (needs_grad or not fusable):
        why = "need_weights with autograd" if needs_grad else _why_not_fusable(q, v, drop)
        observe.emit_step("kernel", None, f"reference: {why}")
        out, weights = reference_attention(
            q, k, v, mask, causal=causal, scale=scale, dropout=drop, training=training
        )
        observe.emit_step("weights", weights)
        observe.emit_step("context", out)
        return AttentionResult(out, weights)
    if not fusable:
        observe.emit_step("kernel", None, f"PyTorch SDPA: {_why_not_fusable(q, v, drop)}")
        if causal and mask is not None:  # PyTorch refuses a mask together with is_causal
            mask, causal = _combine(mask, causal_mask(lq, lk, device=q.device)), False
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal, scale=scale
        )
        out = _zero_empty_rows(out, mask)
        observe.emit_step("context", out)
        return AttentionResult(out, None)

    out, lse, q4, k4, bias = _fused(q, k, v, mask, causal, scale)
    weights = None
    if need_weights:
        observe.emit_step("kernel", None, "flash+lse: need_weights=True, weights from log-sum-exp")
        weights = attention_weights_from_lse(q4, k4, lse, bias, causal=causal, scale=scale)
        weights = weights.reshape(*out.shape[:-1], lk)
        observe.emit_step("weights", weights)
    else:
        observe.emit_step("kernel", None, "fused: PyTorch CPU flash kernel, need_weights=False")
    if observe.wants_attention():
        observe.emit_attention(
            observe.AttentionCall(q=q4, k=k4, mask=bias, causal=causal, scale=scale, lse=lse)
        )
    observe.emit_step("context", out)
    return AttentionResult(out, weights)


def _blocked(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, scale: float
) -> AttentionResult:
    """Output and exact weights, block by block (:mod:`attnlab.functional.blocked`)."""
    observe.emit_step("kernel", None, "blocked: need_weights=True, weights written block by block")
    lead = leading_shape(q, k, v, mask)
    q4, k4, v4 = (_as4d(t, lead) for t in (q, k, v))
    bias = None if mask is None else _as_bias(mask, weights_dtype(q4.dtype))  # not half
    if bias is not None and bias.dim() > 2:
        bias = _as4d(bias, lead)
    out, weights = attention_with_weights(q4, k4, v4, bias, causal=causal, scale=scale)
    out = out.reshape(*lead, q.shape[-2], v.shape[-1])
    weights = weights.reshape(*lead, q.shape[-2], k.shape[-2])
    observe.emit_step("weights", weights)
    observe.emit_step("context", out)
    return AttentionResult(out, weights)


def _fused(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Run the flash kernel on 4-D views. Returns output in the input's leading shape, and the
    4-D q, k, float bias and lse (B', H', Lq) it used."""
    lead = leading_shape(q, k, v, mask)
    lq, lk = q.shape[-2], k.shape[-2]
    q4, k4, v4 = (_as4d(t, lead) for t in (q, k, v))
    bias = None
    if mask is not None:
        bias = _as_bias(mask, q.dtype)
        bias = _as4d(bias, lead) if bias.dim() > 2 or len(lead) != 2 else bias
    lengths = None
    if mask is not None and q.dim() == 4 and not q4.requires_grad:
        lengths = prefix_lengths(mask, q4.shape[0], lk)
    if lengths is not None:  # padded batch: attend to each sample's real keys only
        observe.emit_step("mask", None, "key-padding prefix mask → per-sample fused kernel")
        out, lse = padded_flash(q4, k4, v4, lengths, causal, scale)  # (B,H,Lq,d_v), (B,H,Lq)
    else:
        out, lse = _flash(q4, k4, v4, 0.0, causal, attn_mask=bias, scale=scale)  # (B',H',Lq,d_v)
    out = out.reshape(*lead, lq, v.shape[-1])
    return out, lse, q4, k4, bias


def attention_weights_from_lse(
    q: Tensor,  # (B, H, Lq, d)
    k: Tensor,  # (B, H, Lk, d)
    lse: Tensor,  # (B, H, Lq)
    bias: Tensor | None = None,  # float, broadcastable to (B, H, Lq, Lk); -inf = masked
    *,
    causal: bool = False,
    scale: float,
    rows: slice = slice(None),
) -> Tensor:
    """Exact weights w = exp(q·kᵀ·scale + bias − lse) for query ``rows``: ``(B, H, rows, Lk)``.

    One batched matmul writes the exponent straight into the result: the subtraction of the
    log-sum-exp is folded into it by appending −lse to each query and a 1 to each key, so
    [q·scale, −lse]·[k, 1]ᵀ = q·kᵀ·scale − lse. Then the bias is added and ``exp_`` runs in place:
    nothing but the result is of size N×N. ``causal`` is start-aligned (the flash kernel's
    ``is_causal``, Lq == Lk); end-aligned masks arrive as ``bias``.
    """
    start, stop, _ = rows.indices(q.shape[-2])
    dtype = weights_dtype(q.dtype)
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], lse.shape[:-1])
    q = q[..., start:stop, :].to(dtype).expand(*batch, stop - start, q.shape[-1])
    k = k.to(dtype).expand(*batch, *k.shape[-2:])
    lse = lse[..., start:stop].to(dtype).expand(*batch, stop - start)
    with torch.no_grad():
        q_aug = torch.cat((q * scale, -lse[..., None]), dim=-1)  # (B, H, r, d + 1)
        k_aug = torch.cat((k, torch.ones_like(k[..., :1])), dim=-1)  # (B, H, Lk, d + 1)
        weights = torch.matmul(q_aug, k_aug.transpose(-2, -1))  # (B, H, r, Lk)
        if bias is not None:
            weights.add_(bias[..., start:stop, :] if bias.shape[-2] != 1 else bias)
        weights.exp_()
        if causal:  # zero keys after the query: j > i, with i counted from ``start``
            weights.tril_(diagonal=start)
    return weights


def _as4d(t: Tensor, lead: tuple[int, ...]) -> Tensor:
    """(…, L, d) → (B', H', L, d) with leading dims broadcast to ``lead``."""
    t = t.expand(*lead, *t.shape[-2:]) if t.shape[:-2] != lead else t
    if len(lead) == 2:
        return t
    if len(lead) < 2:
        return t.reshape(*((1,) * (2 - len(lead))), *t.shape)
    return t.reshape(-1, lead[-1], *t.shape[-2:])


def _as_bias(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Boolean (True = attend) → additive float (0 / −inf); float masks cast to ``dtype``."""
    if mask.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=mask.device)
        return zero.masked_fill(~mask, float("-inf")) if mask.dim() else zero
    return mask.to(dtype)


def _combine(mask: Tensor, visible: Tensor) -> Tensor:
    """Combine a user mask with a boolean visibility mask (True = attend)."""
    if mask.dtype == torch.bool:
        return mask & visible
    return mask.masked_fill(~visible, float("-inf"))


def _is_causal_bool_mask(mask: Tensor, lq: int, lk: int) -> bool:
    """True for a boolean mask that is exactly the start-aligned lower triangle (Lq == Lk),
    whatever its broadcast leading dims. Costs one comparison of Lq×Lk booleans."""
    if mask.dtype != torch.bool or lq != lk or mask.shape[-2:] != (lq, lk) or lq < 2:
        return False
    if any(s != 1 for s in mask.shape[:-2]):
        return False
    plane = mask.reshape(lq, lk)
    return bool(torch.equal(plane, _reference_causal(lq, str(mask.device))))


@functools.lru_cache(maxsize=4)
def _reference_causal(n: int, device: str) -> Tensor:
    """Lower-triangular (n, n) mask kept for comparisons (at most 4 sizes; n² bytes each), so
    recognising a causal mask does not allocate and fault a fresh N×N tensor every call."""
    return causal_mask(n, n, device=device)


def _zero_empty_rows(out: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return out
    visible = mask.any(dim=-1) if mask.dtype == torch.bool else (mask > float("-inf")).any(-1)
    if bool(visible.all()):
        return out
    return out.masked_fill(~visible[..., None], 0.0)


def _why_not_fusable(q: Tensor, v: Tensor, drop: float) -> str:
    if drop > 0:
        return f"dropout={drop} in training"
    return f"d_k={q.shape[-1]} differs from d_v={v.shape[-1]}"
