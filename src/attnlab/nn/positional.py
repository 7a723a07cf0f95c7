"""Positional encoding modules: thin wrappers over :mod:`attnlab.functional.positional`.

Dimension legend: B batch, T positions, D model width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.functional.positional import sinusoidal_table

__all__ = ["LearnedPositionalEmbedding", "SinusoidalPositionalEncoding", "check_length"]


def check_length(length: int, offset: int, max_len: int) -> None:
    if offset + length > max_len:
        raise ValueError(
            f"sequence too long for the positional table: positions {offset}.."
            f"{offset + length - 1} requested, max_len is {max_len}"
        )


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sin/cos table (no parameters): returns PE[offset : offset + T], (T, D)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

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
