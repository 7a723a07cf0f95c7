"""What several experiments share: a character corpus of Shakespeare, their settings of the
training loop (:func:`attnlab.train.loop.train_loop`, which records the loss curve and wall
time), and mean pairwise distances between heads' maps.

Every experiment trains its models from a fixed seed on batches drawn from a fixed-seed
generator, so two models compared in one experiment see the same batches in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from attnlab.data.shakespeare import read_plays
from attnlab.data.tokenizers import CharTokenizer
from attnlab.data.windows import sample_windows
from attnlab.train.loop import LoopResult, train_loop
from attnlab.train.schedule import learning_rate

__all__ = ["CharCorpus", "head_distance", "train_steps"]

LMBatch = tuple[Tensor, Tensor]  # input ids (B, T), targets (B, T) with −100 = no loss


@dataclass
class CharCorpus:
    """Shakespeare as character ids, split 90/10 into training and validation text."""

    tokenizer: CharTokenizer
    train_ids: Tensor  # (N_train,) int64
    val_ids: Tensor  # (N_val,)

    @classmethod
    def load(cls, plays: int | None, max_chars: int | None = None) -> CharCorpus:
        text = read_plays(plays)[:max_chars]
        tokenizer = CharTokenizer.from_text(text)
        ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
        cut = int(len(ids) * 0.9)
        return cls(tokenizer, ids[:cut], ids[cut:])

    def batch(self, g: torch.Generator, batch: int, length: int, split: str = "train") -> LMBatch:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
        return sample_windows(
            self.train_ids if split == "train" else self.val_ids, batch, length, g
        )


def train_steps(
    model: nn.Module, next_batch: Callable[[int], LMBatch], steps: int, *, lr: float,
    desc: str = "train", warmup: int | None = None, clip: float | None = 1.0,
) -> LoopResult:  # fmt: skip
    """The experiments' settings of :func:`attnlab.train.loop.train_loop`: AdamW (weight decay
    0.01) for ``steps`` steps on ``next_batch(step)`` = (ids, targets), the loss the model's own
    (``model(input_ids=ids, targets=targets).loss``). The learning rate is constant, or with
    ``warmup`` rises linearly for that many steps and then decays along a cosine to lr/10
    (:func:`attnlab.train.schedule.learning_rate`). Gradients are clipped to norm ``clip``
    (None: not clipped). The model is left in eval mode."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = None
    if warmup is not None:
        schedule = partial(learning_rate, peak=lr, floor=lr / 10, warmup=warmup, total=steps)

    def inputs(step: int) -> dict[str, Tensor]:
        ids, targets = next_batch(step)
        return {"input_ids": ids, "targets": targets}

    return train_loop(model, optimizer, inputs, steps=steps, schedule=schedule, grad_clip=clip,
                      desc=desc)  # fmt: skip


def head_distance(weights: Tensor, rows: Tensor | None = None) -> float:
    """Mean pairwise distance between the heads of one layer: weights (B, H, T, T) →
    mean over head pairs and query rows of the total-variation distance ½·Σ|p − q| (0 = the
    heads attend identically, 1 = to disjoint keys). ``rows`` (B, T) bool keeps only those query
    rows (e.g. the positions a task scores). NaN for a single head."""
    H = weights.shape[1]
    if H < 2:
        return float("nan")
    i, j = torch.triu_indices(H, H, offset=1)
    tv = 0.5 * (weights[:, i] - weights[:, j]).abs().sum(-1)  # (B, pairs, T)
    if rows is not None:
        return float(tv.transpose(1, 2)[rows].mean())  # (rows kept, pairs) → mean
    return float(tv.mean())
