"""The readable reference: softmax(QKᵀ·scale + mask)·V, written out step by step.

Every fast path in :mod:`attnlab.functional.attention` is tested against this function and
against PyTorch's own kernels. It materialises the full (..., Lq, Lk) score matrix.

Dimension legend: Lq queries, Lk keys, d_k key size, d_v value size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.functional.bias import AttentionBias
from attnlab.functional.checks import default_scale

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

    Non-finite inputs follow IEEE arithmetic over the keys each query sees, and nothing else: a
    NaN in query i, or in a key, value or float-mask entry that query i sees, makes row i NaN
    (weights NaN at the keys it sees, 0 at the others); a hidden key never reaches a row; a row
    whose visible scores are all −inf gets 0, like a row with no visible key (PyTorch's math
    SDPA does the same).
    """
    lq, lk = q.shape[-2], k.shape[-2]
    bias = mask if isinstance(mask, AttentionBias) else AttentionBias.build(
        lq, lk, mask, causal=causal, n_lead=q.dim() - 2
    )  # fmt: skip
    scale = default_scale(q.shape[-1]) if scale is None else scale
    scores = bias.cap(torch.matmul(q, k.transpose(-2, -1)) * scale)  # (..., Lq, Lk)
    added = bias.dense(scores.dtype, q.device, n_lead=q.dim() - 2)  # 0 / −inf, float masks
    hidden = None if added is None else added == float("-inf")  # (...|1, Lq|1, Lk)
    if hidden is not None:  # −inf by filling, not adding: a NaN score of a hidden key stays out
        scores = torch.where(hidden, float("-inf"), scores + added)
    # A row of −inf only (no visible key, or −inf scores) would give NaN (in the output and in
    # every gradient): it gets zeros, as PyTorch's math SDPA gives. A NaN score is not −inf.
    live = (scores != float("-inf")).any(dim=-1, keepdim=True)  # (..., Lq, 1)
    zero = torch.zeros((), dtype=scores.dtype, device=scores.device)
    scores = torch.where(live, scores, zero)
    weights = torch.where(live, torch.softmax(scores, dim=-1), zero)  # (..., Lq, Lk)
    if hidden is not None:
        weights = weights.masked_fill(hidden, 0.0)  # a NaN row is NaN only where it looks
    dropped = torch.dropout(weights, dropout, training) if dropout > 0 and training else weights
    out = torch.where(live, _value_product(dropped, v, hidden), zero)  # 0·NaN is not 0
    return out, weights  # (..., Lq, d_v), (..., Lq, Lk)


def _value_product(w: Tensor, v: Tensor, hidden: Tensor | None) -> Tensor:
    """w·v summed over the keys each query sees only. A plain product adds 0·NaN = NaN (and
    0·inf) from a hidden key's value, so when ``v`` is not finite its NaN/±inf entries are
    applied here as IEEE arithmetic would over the visible keys: NaN from a NaN value or from
    inf times a weight 0, ±inf from inf times a positive weight, NaN from +inf and −inf."""
    if hidden is None or v.device.type == "meta" or bool(torch.isfinite(v).all()):
        return torch.matmul(w, v)
    finite = torch.isfinite(v)
    out = torch.matmul(w, torch.where(finite, v, 0.0))  # NaN where the weights are NaN

    def hits(rows: Tensor, entries: Tensor) -> Tensor:  # (..., Lq, d_v): any (key, entry) pair
        return torch.matmul(rows.to(w.dtype), entries.to(w.dtype)) > 0

    seen = ~hidden
    positive = seen & (w > 0)
    nan = hits(seen, v.isnan()) | hits(seen & ~(w > 0), v.isinf())
    up, down = hits(positive, v == float("inf")), hits(positive, v == float("-inf"))
    out = torch.where(up, float("inf"), torch.where(down, float("-inf"), out))
    return torch.where(nan | (up & down) | out.isnan(), float("nan"), out)
