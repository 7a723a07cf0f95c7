"""Will it fit? The memory a configuration needs, estimated before anything is allocated.

    >>> from attnlab.memory import attention_estimate
    >>> attention_estimate(128, 4, batch=2, seq=10).total
    335872

An :class:`Estimate` counts the big float32 tensors only: parameters (and, for training, their
gradients and AdamW's two moments), the activations one step keeps, and the (B, H, T, T)
attention maps where a route materialises them. Python, PyTorch and the allocator need room
too, so :func:`ensure_fits` refuses a configuration whose estimate exceeds ``MARGIN`` (80%) of
the memory available now (``MemAvailable`` in /proc/meminfo, else free physical pages from
``os.sysconf``). The estimates are deliberately low rather than high: a refusal means the run
could not have fitted, never that it might not have.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attnlab.models.params import attention_parameter_count

if TYPE_CHECKING:
    from attnlab.train.config import TrainConfig

__all__ = ["MARGIN", "Estimate", "attention_estimate", "available", "ensure_fits",
           "training_estimate"]  # fmt: skip

MARGIN = 0.8  # refuse above this share of the available memory
FLOAT = 4  # bytes of a float32
CHAR_VOCAB = 64  # a character vocabulary is at least this large (the corpus is not read here)


@dataclass(frozen=True)
class Estimate:
    parts: dict[str, int]  # what → bytes

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def __str__(self) -> str:
        shown = ", ".join(f"{name} {human(n)}" for name, n in self.parts.items() if n)
        return f"about {human(self.total)} ({shown})"


def human(n: float) -> str:
    """Bytes in the largest unit (base 1024) that keeps the number below 1024: '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def available() -> int | None:
    """Memory available to a new allocation now, in bytes (None when the system won't say)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def ensure_fits(estimate: Estimate, have: int | None = None) -> None:
    """Raise a ValueError with the estimate and the machine's memory when it cannot fit."""
    have = available() if have is None else have
    if have is not None and estimate.total > MARGIN * have:
        raise ValueError(
            f"this configuration needs {estimate} of memory; this machine has {human(have)} "
            f"available, and attnlab refuses anything above {MARGIN:.0%} of that"
        )


def attention_estimate(
    d_model: int, n_heads: int, *, batch: int, seq: int, n_kv_heads: int | None = None,
    need_weights: bool = False,
) -> Estimate:  # fmt: skip
    """One :class:`attnlab.nn.attention.MultiHeadAttention` forward pass without gradients: its
    parameters, the input and six (B, T, D) activations (q, k, v, context, concat, output) and,
    with ``need_weights``, the (B, H, T, T) weights. The flash kernel keeps no (T, T) map."""
    tokens = batch * seq
    return Estimate({
        "parameters": attention_parameter_count(d_model, n_heads, n_kv_heads=n_kv_heads) * FLOAT,
        "activations": 7 * tokens * d_model * FLOAT,
        "attention weights": batch * n_heads * seq * seq * FLOAT if need_weights else 0,
    })  # fmt: skip


def training_estimate(config: TrainConfig, processes: int = 1) -> Estimate:
    """One training step of ``config`` in each of ``processes`` processes: parameters with their
    gradients and AdamW's two moments (4 copies per process); per layer and token of one
    micro-batch (``batch / (accumulate · processes)`` sequences) the activations backward needs
    (about 8·D + 2·d_ff floats); the logits and their gradient. The vocabulary is not known
    before the corpus is read: ``bpe_vocab`` for BPE, at least 64 characters for char."""
    c = config
    vocab = c.bpe_vocab if c.tokenizer == "bpe" else CHAR_VOCAB
    layer = 4 * c.d_model * c.d_model + 2 * c.d_model * c.d_ff  # attention + feed-forward
    cross = 4 * c.d_model * c.d_model if c.task == "translate" else 0  # decoder cross-attention
    sides = 2 if c.task == "translate" else 1  # encoder and decoder, source and target
    positions = c.context * c.d_model if c.task == "lm" else 0  # translation: sinusoidal
    embeddings = sides * vocab * c.d_model + positions
    parameters = c.n_layers * (sides * layer + cross) + embeddings
    micro_batch = max(1, c.batch // (c.accumulate * processes))  # batch: all processes' sum
    tokens = micro_batch * c.context * sides
    per_token = c.n_layers * (8 * c.d_model + 2 * c.d_ff)
    return Estimate({
        "parameters, gradients, AdamW state": 4 * parameters * FLOAT * processes,
        "activations": tokens * per_token * FLOAT * processes,
        "logits": 2 * tokens * vocab * FLOAT * processes,
    })  # fmt: skip
