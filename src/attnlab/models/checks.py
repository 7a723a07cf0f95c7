"""Input checks shared by the models, raised before any compute."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_ids"]


def check_ids(name: str, ids: Tensor, vocab_size: int, max_len: int, offset: int = 0) -> None:
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype not in (torch.long, torch.int):
        shape = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be an integer tensor of shape (B, T); got {shape}")
    if ids.numel() == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(ids.shape)}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name} must lie in [0, vocab_size={vocab_size}); got values from {low} to {high}"
        )
    if offset + ids.shape[1] > max_len:
        raise ValueError(
            f"{name} is too long: {offset + ids.shape[1]} positions"
            + (f" ({offset} cached + {ids.shape[1]} new)" if offset else "")
            + f", max_len is {max_len}"
        )
