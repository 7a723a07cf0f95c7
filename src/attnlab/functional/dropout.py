"""Dropout from random bits: the same operation as ``torch.nn.functional.dropout``, a fraction
of PyTorch's CPU cost.

On these machines (torch 2.13 CPU) ``F.dropout`` draws its mask with ``bernoulli_``, one
floating-point random number per element: dropout on a (32, 128, 768) activation took 57 ms on
one thread, more than the GELU before it. Here one 64-bit random word (PyTorch's generator,
``random_`` over the full int64 range, every bit uniform) gives four 16-bit numbers u, and an
element is kept when u ≥ round(p·65536): the drop probability is p rounded to a multiple of
1/65536 (0.1 → 0.100006), and kept elements are scaled by 1/(1 − that probability), so the
expectation is exactly the input. The mask depends only on the generator's state:
``torch.manual_seed`` reproduces it, as it does F.dropout's (not bit-identical to F.dropout's).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["dropout", "dropout_add", "dropout_scale", "keep_mask", "kept_from_bits", "random16"]

_LEVELS = 2**16  # each random 16-bit number u is uniform on [0, 65536)


def _cut(p: float) -> int:
    """The signed 16-bit number an element's u must reach to be kept: round(p·65536) − 32768
    (32768, which no int16 reaches, when p rounds to 1: callers keep nothing then). p is checked
    first."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1]; got {p!r}")
    return round(p * _LEVELS) - _LEVELS // 2


def dropout_scale(p: float) -> float:
    """1 / (1 − p'), p' = p rounded to a multiple of 1/65536 (the probability used); 0 when p'
    is 1 (nothing is kept, as ``F.dropout(x, 1.0)`` gives zeros)."""
    dropped = _cut(p) + _LEVELS // 2
    return 0.0 if dropped == _LEVELS else _LEVELS / (_LEVELS - dropped)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu"
              ) -> Tensor:  # fmt: skip
    """A bool tensor of ``shape``: each element True (kept) with probability 1 − p'."""
    if _cut(p) == _LEVELS // 2:  # p' = 1 (checks p): nothing is kept, nothing is drawn
        return torch.zeros(shape, dtype=torch.bool, device=device)
    return kept_from_bits(random16(shape, device), p, torch.bool)


def random16(shape: torch.Size | tuple[int, ...], device: torch.device | str) -> Tensor:
    """int16 numbers of ``shape``, u + 32768 uniform on [0, 65536): four per random word."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None)  # every bit uniform (the default range leaves the top bit 0)
    return words.view(torch.int16)[:n].view(shape)


def kept_from_bits(bits: Tensor, p: float, dtype: torch.dtype) -> Tensor:
    """bits' shape in ``dtype``: 1 (True) where an element of :func:`random16`'s ``bits`` is kept
    under dropout p, else 0. The comparison writes straight into ``dtype``: one pass."""
    cut = _cut(p)
    kept = torch.empty(bits.shape, dtype=dtype, device=bits.device)
    if cut == _LEVELS // 2:  # p' = 1 (an int16 comparison with 32768 would wrap around)
        return kept.zero_()
    return torch.ge(bits, cut, out=kept)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)`` with the mask from :func:`keep_mask`; differentiable in x
    (the gradient is the same mask, scaled)."""
    if not training or p == 0.0:
        return x
    return x * _scaled_mask(x, p)


def dropout_add(residual: Tensor, x: Tensor, p: float, training: bool = True) -> Tensor:
    """``residual + dropout(x, p, training)`` in one pass (``addcmul``), as a residual
    connection adds a sublayer's output."""
    if not training or p == 0.0:
        return residual + x
    return torch.addcmul(residual, x, _scaled_mask(x, p))


def _scaled_mask(x: Tensor, p: float) -> Tensor:
    """x's shape and dtype: 1/(1 − p') where kept, 0 where dropped."""
    # 1.0/0.0 written straight into x's dtype, then scaled: with a bool mask and then
    # where(keep, scale, 0), dropout of (32, 128, 192) took 2.19 ms instead of 1.00 (one
    # thread, random draws included: python -m benchmarks.training --parts).
    scale = dropout_scale(p)  # checks p
    if scale == 0.0:  # p' = 1: nothing is kept, nothing is drawn
        return torch.zeros(x.shape, dtype=x.dtype, device=x.device)
    return kept_from_bits(random16(x.shape, x.device), p, x.dtype).mul_(scale)
