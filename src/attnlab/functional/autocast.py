"""Custom autograd Functions under autocast: cast their operands as autocast casts a GEMM's, then
run with autocast off (its casts inside a Function's forward would not be recorded)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["cast_as_autocast"]


def cast_as_autocast(
    device: str, tensors: Sequence[Tensor | None]
) -> tuple[tuple[Tensor | None, ...], contextlib.AbstractContextManager[object]]:
    """(the tensors, cast to autocast's dtype when autocast is on for ``device``: float64 and None
    stay as they are; a context that turns autocast off, or does nothing)."""
    if not (torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)):
        return tuple(tensors), contextlib.nullcontext()
    low = torch.get_autocast_dtype(device)
    cast = tuple(t if t is None or t.dtype == torch.float64 else t.to(low) for t in tensors)
    return cast, torch.autocast(device, enabled=False)
