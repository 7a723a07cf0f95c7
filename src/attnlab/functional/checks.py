"""Input checks shared by the attention kernels: every error names the argument, what was
expected and what was given."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["check_attention_inputs", "leading_shape"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def leading_shape(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[int, ...]:
    """The broadcast leading (batch-like) shape of q, k, v and the mask."""
    if q.shape[:-2] == k.shape[:-2] == v.shape[:-2] and (mask is None or mask.dim() <= 2):
        return tuple(q.shape[:-2])
    shapes = [q.shape[:-2], k.shape[:-2], v.shape[:-2]]
    if mask is not None and mask.dim() > 2:
        shapes.append(mask.shape[:-2])
    return tuple(torch.broadcast_shapes(*shapes))


def check_attention_inputs(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None, dropout: float
) -> None:
    """Raise ValueError for any input that attention would otherwise reject cryptically or,
    worse, accept silently."""
    if _common_case(q, k, v, mask, scale, dropout):
        return  # a few attribute reads: attention on short sequences must not pay for checks
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have at least 2 dimensions (..., L, d); got shape {_shape(t)}"
            )
        if t.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{name} must be a floating-point tensor; got dtype {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"q, k and v must share one dtype; got q {q.dtype}, k {k.dtype}, v {v.dtype}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the last dimension d_k: q has {q.shape[-1]}, k has "
            f"{k.shape[-1]} (q {_shape(q)}, k {_shape(k)})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys Lk (dimension -2): k has "
            f"{k.shape[-2]}, v has {v.shape[-2]} (k {_shape(k)}, v {_shape(v)})"
        )
    try:
        if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
            torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "the leading (batch, head) dimensions of q, k and v must broadcast; got "
            f"q {_shape(q)}, k {_shape(k)}, v {_shape(v)}"
        ) from None
    if mask is not None:
        _check_mask(mask, q, k)
    if scale is not None and not (scale > 0 and scale != float("inf")):
        raise ValueError(f"scale must be a positive finite number; got {scale}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")


def _common_case(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None, dropout: float
) -> bool:
    """True for the everyday input, which passes every check below: 4-D float32 q/k/v with one
    (B, H), q and k sharing d_k, k and v sharing Lk, no mask, a valid scale. Covers decoding
    with a KV cache (Lq = 1 < Lk), where per-call checks are a visible share of each token."""
    return (
        mask is None
        and dropout == 0.0
        and (scale is None or (type(scale) is float and 0.0 < scale < math.inf))
        and type(q) is type(k) is type(v) is torch.Tensor
        and q.dtype == k.dtype == v.dtype == torch.float32
        and q.dim() == k.dim() == v.dim() == 4
        and q.shape[:2] == k.shape[:2] == v.shape[:2]
        and q.shape[3] == k.shape[3]
        and k.shape[2] == v.shape[2]
    )


def _check_mask(mask: Tensor, q: Tensor, k: Tensor) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None; got {type(mask).__name__}")
    if mask.dtype != torch.bool and mask.dtype not in _FLOAT_DTYPES:
        raise ValueError(
            "mask must be bool (True = may attend) or floating point (added to the scores); "
            f"got dtype {mask.dtype}. For 0/1 integer masks use mask.bool()"
        )
    lq, lk = q.shape[-2], k.shape[-2]
    expected = (*leading_shape(q, k, k, None), lq, lk)
    if mask.dim() < 1 or mask.dim() > len(expected):
        ok = False
    else:
        try:
            ok = tuple(torch.broadcast_shapes(mask.shape, expected)) == expected
        except RuntimeError:
            ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {_shape(mask)} cannot broadcast to (..., Lq, Lk) = {expected}"
        )
