"""Learning rate: linear warm-up to the peak, then cosine decay to a floor (as in GPT-2/3)."""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def learning_rate(step: int, *, peak: float, floor: float, warmup: int, total: int) -> float:
    """lr(step) for step = 0..total−1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))
