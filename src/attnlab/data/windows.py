"""Language-model batches from one long sequence of token ids: random windows of T + 1
consecutive tokens, split into inputs (the first T) and targets (the last T, shifted by one).

Dimension legend: N tokens in the sequence, B windows, T window length.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_windows"]


def sample_windows(
    ids: Tensor, batch: int, length: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``batch`` windows drawn uniformly from ``ids`` (N,) → inputs (B, T) and targets (B, T),
    targets[b, t] = inputs[b, t + 1] = ids[start_b + t + 1], with T = ``length``.

    A window spans ids[start : start + T + 1], so start ranges over 0..N − T − 1: the last window
    ends at the last token, which is then a target too."""
    if ids.dim() != 1:
        raise ValueError(f"ids must be one sequence (N,); got shape {tuple(ids.shape)}")
    if len(ids) < length + 1:
        raise ValueError(f"the text has {len(ids)} tokens; a window of {length} inputs and their "
                         f"targets needs {length + 1}")  # fmt: skip
    starts = torch.randint(0, len(ids) - length, (batch,), generator=generator)  # (B,) ≤ N − T − 1
    window = ids[starts[:, None] + torch.arange(length + 1)]  # (B, T + 1)
    return window[:, :-1], window[:, 1:]
