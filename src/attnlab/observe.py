"""The one place where attention is observed.

Everything that watches attention (shape tracing, capture of exact attention maps) registers an
:class:`Observer` here. Attention code reports to it through two calls:

* :func:`emit_step` – a named tensor in the computation (``"q"``, ``"heads"``, ``"weights"``...)
  or a note such as which kernel ran and why;
* :func:`emit_attention` – an :class:`AttentionCall`: everything needed to recompute that call's
  attention weights exactly (queries, keys, mask, scale and the per-row log-sum-exp).

Modules wrap their forward in :func:`scope` so reports are attributed to the module that made
them; observers map modules to dotted names (``"layers.3.self_attn"``) themselves.

When no observer is active every hook is a single ``ContextVar.get`` and a tuple check: it costs
nothing measurable.

Dimension legend: B batch, H heads, Lq queries, Lk keys, d head size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.functional.bias import AttentionBias

__all__ = [
    "AttentionCall",
    "Observer",
    "Step",
    "active_observers",
    "current_module",
    "emit_attention",
    "emit_step",
    "observing",
    "scope",
    "wants_attention",
]


@dataclass(frozen=True)
class Step:
    """One named step of an attention computation."""

    name: str  # e.g. "x", "q", "heads", "weights", "concat", "out", "kernel"
    shape: tuple[int, ...] | None  # tensor size at this step; None for notes such as "kernel"
    note: str = ""  # free text, e.g. "fused SDPA: need_weights=False"


@dataclass(frozen=True)
class AttentionCall:
    """Everything needed to recompute one attention call's weights exactly.

    weights[b, h, i, j] = exp(cap(q[b,h,i]·k[b,h,j]·scale) + bias[b,h,i,j] − lse[b,h,i]), with
    ``bias`` the call's :class:`~attnlab.functional.bias.AttentionBias` (mask, causal rule,
    window, padding, ALiBi, softcap). A row with no visible key has lse +inf or every bias −inf,
    so its weights are 0.
    """

    q: Tensor  # (B, H, Lq, d)  unscaled queries
    k: Tensor  # (B, H_kv, Lk, d)  keys; H_kv divides H (grouped-query keys may stay unrepeated)
    bias: AttentionBias  # for (B, H, Lq, Lk)
    scale: float
    lse: Tensor  # (B, H, Lq)  log-sum-exp of each query row's scaled, biased scores
    # (H,) logits of attention sinks (GPT-OSS), included in lse: rows then sum to
    # 1 − exp(sink − lse); None: every row sums to 1 (0 for a row that sees no key)
    sinks: Tensor | None = None


class Observer:
    """Base class: override what you need. ``needs_attention`` asks for :class:`AttentionCall`s."""

    needs_attention: bool = False

    def step(self, module: nn.Module | None, step: Step) -> None:  # pragma: no cover - default
        pass

    def attention(self, module: nn.Module | None, call: AttentionCall) -> None:  # pragma: no cover
        pass


_OBSERVERS: ContextVar[tuple[Observer, ...]] = ContextVar("attnlab_observers", default=())
_MODULE: ContextVar[nn.Module | None] = ContextVar("attnlab_module", default=None)


def active_observers() -> tuple[Observer, ...]:
    return _OBSERVERS.get()


def wants_attention() -> bool:
    """True when some active observer wants exact :class:`AttentionCall` records."""
    return any(o.needs_attention for o in _OBSERVERS.get())


def current_module() -> nn.Module | None:
    return _MODULE.get()


@contextlib.contextmanager
def observing(observer: Observer) -> Iterator[Observer]:
    """Activate ``observer`` for the duration of the ``with`` block (nests, thread/task local)."""
    token = _OBSERVERS.set((*_OBSERVERS.get(), observer))
    try:
        yield observer
    finally:
        _OBSERVERS.reset(token)


@contextlib.contextmanager
def scope(module: nn.Module) -> Iterator[None]:
    """Attribute reports made inside the block to ``module``."""
    if not _OBSERVERS.get():
        yield
        return
    token = _MODULE.set(module)
    try:
        yield
    finally:
        _MODULE.reset(token)


def emit_step(name: str, tensor: Tensor | None = None, note: str = "") -> None:
    observers = _OBSERVERS.get()
    if not observers:
        return
    shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else None
    step = Step(name, shape, note)
    module = _MODULE.get()
    for o in observers:
        o.step(module, step)


def emit_attention(call: AttentionCall) -> None:
    module = _MODULE.get()
    for o in _OBSERVERS.get():
        if o.needs_attention:
            o.attention(module, call)
