"""Shape tracing: see tensor sizes flow through attention, and which kernel ran and why.

    >>> import torch, attnlab
    >>> mha = attnlab.MultiHeadAttention(128, 4)
    >>> with attnlab.trace_shapes(print_to=None) as trace:
    ...     _ = mha(torch.randn(2, 10, 128))
    >>> [step.shape for step in trace.calls[0].steps if step.name in ("heads", "concat")]
    [(2, 4, 10, 32), (2, 10, 128)]

Tracing is an :class:`attnlab.observe.Observer`; when no trace is active, attention pays one
``ContextVar`` lookup per step and nothing else.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from torch import nn

from attnlab import observe

__all__ = ["Trace", "TracedCall", "trace_shapes"]

# Steps shown on the one-line summary of a module call, and of a bare functional call.
_SHOWN_MODULE = ("x", "q", "heads", "weights", "concat", "out")
_SHOWN_FUNCTIONAL = ("q", "k", "v", "weights", "context")


@dataclass
class TracedCall:
    """The steps of one attention module call (or of a bare functional call)."""

    name: str  # dotted module path ("layers.3.self_attn"), or the class name without a model
    steps: list[observe.Step] = field(default_factory=list)

    @property
    def kernel(self) -> str:
        notes = [s.note for s in self.steps if s.name == "kernel"]
        return notes[-1] if notes else ""

    def line(self) -> str:
        functional = self.name == "scaled_dot_product_attention"
        shown = _SHOWN_FUNCTIONAL if functional else _SHOWN_MODULE
        shapes = [
            f"{s.name} {s.shape}" + (f" [{s.note}]" if s.note else "")
            for s in self.steps
            if s.shape is not None and s.name in shown
        ]
        return " → ".join(shapes)


class Trace(observe.Observer):
    """Collects :class:`TracedCall` s; prints each as it completes when ``print_to`` is set."""

    def __init__(self, model: nn.Module | None, layer: int | str | None, print_to: TextIO | None):
        self.calls: list[TracedCall] = []
        self._names = {id(m): n for n, m in model.named_modules()} if model is not None else {}
        self._layer = layer
        self._print_to = print_to
        self._open: dict[int, TracedCall] = {}

    def _name(self, module: nn.Module | None) -> str:
        if module is None:
            return "scaled_dot_product_attention"
        return self._names.get(id(module), type(module).__name__)

    def _selected(self, name: str) -> bool:
        if self._layer is None:
            return True
        if isinstance(self._layer, int):
            return f"layers.{self._layer}." in f".{name}." or name.startswith(
                f"layers.{self._layer}."
            )
        return name.startswith(self._layer)

    def step(self, module: nn.Module | None, step: observe.Step) -> None:
        name = self._name(module)
        if not self._selected(name):
            return
        key = id(module)
        call = self._open.get(key)
        if call is None or (step.name == "x") or (module is None and step.name == "q"):
            call = TracedCall(name)
            self._open[key] = call
            self.calls.append(call)
        call.steps.append(step)
        is_last = (step.name == "context") if module is None else (step.name == "out")
        if is_last:
            del self._open[key]
            if self._print_to is not None:
                print(self._format(call), file=self._print_to)

    @property
    def steps(self) -> list[observe.Step]:
        return [s for c in self.calls for s in c.steps]

    @staticmethod
    def _format(call: TracedCall) -> str:
        notes = "".join(f"\n    {s.note}" for s in call.steps if s.name == "hook_pattern")
        return f"{call.name}: {call.line()}\n    kernel: {call.kernel}{notes}"

    def summary(self) -> str:
        return "\n".join(c.line() for c in self.calls)

    def __str__(self) -> str:
        return "\n".join(self._format(c) for c in self.calls)


@contextlib.contextmanager
def trace_shapes(
    model: nn.Module | None = None,
    *,
    layer: int | str | None = None,
    print_to: TextIO | bool | None = True,
) -> Iterator[Trace]:
    """Record (and by default print) every attention step's tensor size inside the block.

    Args:
        model: names calls by their dotted module path in ``model`` (``layers.3.self_attn``),
            grouping the output by layer.
        layer: keep only one layer: an index (``3`` → ``layers.3.…``) or a name prefix.
        print_to: stream to print each call to as it finishes; True (default) for the
            current ``sys.stdout``; None or False to only collect.
    """
    stream = sys.stdout if print_to is True else (print_to or None)
    trace = Trace(model, layer, stream)
    with observe.observing(trace):
        yield trace
