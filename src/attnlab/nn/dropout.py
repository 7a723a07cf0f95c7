"""Dropout that costs nothing when it does nothing."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["dropout"]


def dropout(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)``, skipped for an ``nn.Dropout`` in eval mode or at p = 0, where it is the
    identity: a module call per sublayer is a measurable share of a decoding step (three per
    block per token). Any other module (a replacement, or one with hooks) is always called."""
    plain = type(module) is nn.Dropout and not (module._forward_hooks or module._forward_pre_hooks)
    if plain and (not module.training or module.p == 0):
        return x
    return module(x)
