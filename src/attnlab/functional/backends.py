"""Selectable attention backends, like ``torch.nn.attention.sdpa_kernel``.

    with attnlab.backend("portable"):
        out, w = attnlab.scaled_dot_product_attention(q, k, v, need_weights=True)

* ``"auto"`` (default): the fastest exact route for the inputs (see
  :mod:`attnlab.functional.attention`); on devices other than the CPU it is ``"portable"``.
* ``"flash-cpu"``: PyTorch's CPU flash kernel, called directly for its per-row log-sum-exp.
* ``"blocked"``: attnlab's blocked kernel (output and weights one block of query rows at a time).
* ``"reference"``: the readable softmax(QKᵀ·scale + bias)·V, everything materialised.
* ``"portable"``: public PyTorch operations only (``F.scaled_dot_product_attention``, and a
  blocked log-sum-exp where exact weights are wanted): runs on any device PyTorch supports.

Private PyTorch operations are used only by the backend that needs them, behind a check at
first use: when one is missing, a one-time warning says what runs instead (the portable backend
for the flash kernel, public in-place operations for the blocked kernel's softmax).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch

__all__ = ["BACKENDS", "backend", "current_backend", "flash_cpu_kernel", "private_softmax"]

BACKENDS = ("auto", "flash-cpu", "blocked", "reference", "portable")

_BACKEND: ContextVar[str] = ContextVar("attnlab_backend", default="auto")


@contextlib.contextmanager
def backend(name: str) -> Iterator[str]:
    """Run attention inside the block on backend ``name`` (one of :data:`BACKENDS`). Nests, and
    is local to the thread or task, as ``torch.nn.attention.sdpa_kernel`` is."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {name!r}")
    token = _BACKEND.set(name)
    try:
        yield name
    finally:
        _BACKEND.reset(token)


def current_backend() -> str:
    """The backend selected by the innermost :func:`backend` block (``"auto"`` outside)."""
    return _BACKEND.get()


_PRIVATE: dict[str, Callable | None] = {}


def _private(name: str, find: Callable[[], Callable], fallback: str) -> Callable | None:
    """Look a private PyTorch operation up once; warn once and return None when it is missing."""
    if name not in _PRIVATE:
        try:
            _PRIVATE[name] = find()
        except (AttributeError, RuntimeError):
            _PRIVATE[name] = None
            warnings.warn(
                f"this PyTorch ({torch.__version__}) has no {name}: {fallback}",
                RuntimeWarning,
                stacklevel=4,
            )
    return _PRIVATE[name]


def flash_cpu_kernel() -> Callable | None:
    """PyTorch's CPU flash kernel, which returns (output, log-sum-exp); None when missing."""
    return _private(
        "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu",
        lambda: torch.ops.aten._scaled_dot_product_flash_attention_for_cpu,
        "the flash-cpu backend falls back to attnlab's portable one (public operations only)",
    )


def private_softmax() -> Callable | None:
    """``torch._softmax`` (softmax with ``out=``, in place in one pass); None when missing."""
    return _private(
        "torch._softmax", lambda: torch._softmax,
        "the blocked kernel computes its softmax with public in-place operations (3 passes)",
    )  # fmt: skip
