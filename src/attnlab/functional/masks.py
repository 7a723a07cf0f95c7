"""Attention masks. One convention everywhere in attnlab: **True = may attend**.

This is PyTorch SDPA's convention. ``torch.nn.MultiheadAttention`` uses the opposite one
(True = masked out); convert its masks with :func:`from_masked_out`, whose name says which way
the input points.

Dimension legend: B batch, Lq queries, Lk keys.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["causal", "from_masked_out"]


def causal(lq: int, lk: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """Boolean causal mask (Lq, Lk), True = may attend, **aligned to the end**.

    Query i may attend key j when j <= i + (Lk - Lq): the last query sees every key. With
    Lq == Lk this is the usual lower triangle; with Lq < Lk it is the decoding-with-cache case
    (new queries come after Lk - Lq cached keys).
    """
    lk = lq if lk is None else lk
    if lq < 0 or lk < 0:
        raise ValueError(f"causal mask sizes must be non-negative; got lq={lq}, lk={lk}")
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril(diagonal=lk - lq)


def from_masked_out(masked_out: Tensor) -> Tensor:
    """Convert a mask where **True = masked out** (``nn.MultiheadAttention``'s ``attn_mask`` and
    ``key_padding_mask``) into attnlab's convention, True = may attend. Float masks are additive
    in both conventions and are returned unchanged."""
    if masked_out.dtype == torch.bool:
        return ~masked_out
    return masked_out
