"""The readable reference: softmax(QKᵀ·scale + mask)·V, written out step by step.

Every fast path in :mod:`attnlab.functional.attention` is tested against this function and
against PyTorch's own kernels. It materialises the full (..., Lq, Lk) score matrix.

Dimension legend: Lq queries, Lk keys, d_k key size, d_v value size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.functional.masks import causal as causal_mask

__all__ = ["reference_attention"]


def reference_attention(
    q: Tensor,  # (..., Lq, d_k)
    k: Tensor,  # (..., Lk, d_k)
    v: Tensor,  # (..., Lk, d_v)
    mask: Tensor | None = None,  # broadcastable to (..., Lq, Lk): bool True = attend, or float
    *,
    causal: bool = False,
    scale: float | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q·Kᵀ·scale + mask)·V  (Vaswani et al., 2017, eq. 1).

    Returns ``(output (..., Lq, d_v), weights (..., Lq, Lk))``. Masked scores are set to -inf
    before the softmax; a row with no visible key gets weights 0 and output 0 (a finite "large
    negative number", as some tutorials use, would instead spread the row uniformly over the
    masked keys). ``weights`` are the softmax before dropout.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (..., Lq, Lk)
    visible = None  # (..., Lq, Lk) bool, or None when every key is visible
    if causal:
        visible = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
    if mask is not None:
        if mask.dtype == torch.bool:
            visible = mask if visible is None else visible & mask
        else:
            scores = scores + mask.to(scores.dtype)
    if visible is not None:
        scores = scores.masked_fill(~visible, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # rows of -inf only → NaN, fixed next
    any_visible = scores.amax(dim=-1, keepdim=True) > float("-inf")  # (..., Lq, 1)
    weights = torch.where(any_visible, weights, torch.zeros((), dtype=weights.dtype))
    dropped = torch.dropout(weights, dropout, training) if dropout > 0 and training else weights
    return torch.matmul(dropped, v), weights  # (..., Lq, d_v), (..., Lq, Lk)
