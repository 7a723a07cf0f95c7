"""Positional encoding modules: thin wrappers over :mod:`attnlab.functional.positional`.

Dimension legend: B batch, T positions, D model width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.functional.bias import AttentionBias
from attnlab.functional.positional import alibi_slopes, apply_rope, sinusoidal_table

__all__ = [
    "ALiBi",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "check_length",
]


def check_length(length: int, offset: int, max_len: int) -> None:
    if offset + length > max_len:
        raise ValueError(
            f"sequence too long for the positional table: positions {offset}.."
            f"{offset + length - 1} requested, max_len is {max_len}"
        )


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sin/cos table (no parameters): returns scale·PE[offset : offset + T], (T, D)."""

    def __init__(self, max_len: int, d_model: int, *, scale: float = 1.0) -> None:
        super().__init__()
        self.max_len = max_len
        table = sinusoidal_table(max_len, d_model) * scale
        self.register_buffer("table", table, persistent=False)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        check_length(length, offset, self.max_len)
        return self.table[offset : offset + length]  # (T, D)


class LearnedPositionalEmbedding(nn.Module):
    """A learned (max_len, D) table, as in BERT and GPT-2: returns rows offset..offset+T−1."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        check_length(length, offset, self.max_len)
        return self.weight[offset : offset + length]  # (T, D)


class RotaryEmbedding(nn.Module):
    """RoPE for queries and keys (B, H, T, d): ``rope(q, offset)`` rotates positions
    offset..offset+T−1 (see :func:`attnlab.functional.positional.apply_rope`)."""

    def __init__(self, head_dim: int, *, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head size; got head_dim={head_dim}")
        self.head_dim, self.base = head_dim, base

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:  # (..., T, d) → (..., T, d)
        positions = torch.arange(offset, offset + x.shape[-2], device=x.device)
        return apply_rope(x, positions, base=self.base)


class ALiBi(nn.Module):
    """ALiBi score bias (H, Lq, Lk) to pass as a float ``mask`` to attention, with
    ``causal=True`` to block later keys."""

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)  # (H,)

    def forward(self, lq: int, lk: int | None = None) -> Tensor:  # → (H, Lq, Lk)
        bias = AttentionBias.build(lq, lq if lk is None else lk, alibi_slopes=self.slopes)
        return bias.dense(self.slopes.dtype, self.slopes.device)
