"""The readable reference: softmax(QKᵀ·scale + mask)·V, written out step by step.

Every fast path in :mod:`attnlab.functional.attention` is tested against this function and
against PyTorch's own kernels. It materialises the full (..., Lq, Lk) score matrix.

Dimension legend: Lq queries, Lk keys, d_k key size, d_v value size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.functional.bias import AttentionBias

__all__ = ["reference_attention"]


def reference_attention(
    q: Tensor,  # (..., Lq, d_k)
    k: Tensor,  # (..., Lk, d_k)
    v: Tensor,  # (..., Lk, d_v)
    mask: Tensor | AttentionBias | None = None,  # bool True = attend, or float; (..., Lq, Lk)
    *,
    causal: bool = False,
    scale: float | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q·Kᵀ·scale + bias)·V  (Vaswani et al., 2017, eq. 1).

    Returns ``(output (..., Lq, d_v), weights (..., Lq, Lk))``. ``mask`` is a tensor (with
    ``causal`` end-aligned, as everywhere in attnlab) or a whole
    :class:`~attnlab.functional.bias.AttentionBias`. Hidden scores are set to -inf before the
    softmax; a row with no visible key gets weights 0 and output 0 (a finite "large negative
    number", as some tutorials use, would instead spread the row uniformly over the masked
    keys). ``weights`` are the softmax before dropout.
    """
    lq, lk = q.shape[-2], k.shape[-2]
    bias = mask if isinstance(mask, AttentionBias) else AttentionBias.build(
        lq, lk, mask, causal=causal, n_lead=q.dim() - 2
    )  # fmt: skip
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = bias.cap(torch.matmul(q, k.transpose(-2, -1)) * scale)  # (..., Lq, Lk)
    added = bias.dense(scores.dtype, q.device, n_lead=q.dim() - 2)  # 0 / −inf, float masks
    if added is not None:
        scores = scores + added
    any_visible = (scores > float("-inf")).any(dim=-1, keepdim=True)  # (..., Lq, 1)
    zero = torch.zeros((), dtype=scores.dtype, device=scores.device)
    # A row of −inf only would give NaN (in the output and in every gradient): give it zeros.
    scores = torch.where(any_visible, scores, zero)
    weights = torch.where(any_visible, torch.softmax(scores, dim=-1), zero)  # (..., Lq, Lk)
    dropped = torch.dropout(weights, dropout, training) if dropout > 0 and training else weights
    return torch.matmul(dropped, v), weights  # (..., Lq, d_v), (..., Lq, Lk)
