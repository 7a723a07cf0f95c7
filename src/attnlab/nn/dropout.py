"""Dropout that costs nothing when it does nothing, and little when it does."""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.functional import dropout as functional

__all__ = ["dropout", "dropout_add", "is_identity"]


def _plain(module: nn.Module) -> bool:
    return type(module) is nn.Dropout and not (module._forward_hooks or module._forward_pre_hooks)


def is_identity(module: nn.Module) -> bool:
    """True when :func:`dropout` returns its input unchanged: a plain ``nn.Dropout`` in eval
    mode or at p = 0."""
    return _plain(module) and (not module.training or module.p == 0)


def dropout(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)``, skipped for an ``nn.Dropout`` in eval mode or at p = 0, where it is the
    identity: a module call per sublayer is a measurable share of a decoding step (three per
    block per token). In training a plain ``nn.Dropout`` draws its mask from random bits
    (:func:`attnlab.functional.dropout.dropout`: the same operation, a fraction of
    ``bernoulli_``'s cost). Any other module (a replacement, or one with hooks) is always
    called."""
    if is_identity(module):
        return x
    if not _plain(module):
        return module(x)
    return functional.dropout(x, module.p)


def dropout_add(residual: Tensor, module: nn.Module, x: Tensor) -> Tensor:
    """``residual + dropout(module, x)``; for a plain ``nn.Dropout`` in training, one pass
    (:func:`attnlab.functional.dropout.dropout_add`)."""
    if _plain(module) and module.training and module.p > 0:
        return functional.dropout_add(residual, x, module.p)
    return residual + dropout(module, x)
