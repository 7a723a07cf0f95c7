"""What several experiments share: a character corpus of Shakespeare, a plain training loop that
records its loss curve and wall time, and mean pairwise distances between heads' maps.

Every experiment trains its models from a fixed seed on batches drawn from a fixed-seed
generator, so two models compared in one experiment see the same batches in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

from attnlab.data.shakespeare import read_plays
from attnlab.data.tokenizers import CharTokenizer
from attnlab.data.windows import sample_windows
from attnlab.train.schedule import learning_rate

__all__ = ["CharCorpus", "TrainRun", "head_distance", "train_steps"]

Batch = tuple[Tensor, Tensor]  # (input ids (B, T), targets (B, T) with −100 = no loss)


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

    def batch(self, g: torch.Generator, batch: int, length: int, split: str = "train") -> Batch:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
        return sample_windows(
            self.train_ids if split == "train" else self.val_ids, batch, length, g
        )


@dataclass
class TrainRun:
    losses: list[float]  # training loss per step
    seconds: float  # wall time of all steps


def train_steps(
    model: nn.Module, next_batch: Callable[[int], Batch], steps: int, *, lr: float,
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None, desc: str = "train",
    warmup: int | None = None, clip: float | None = 1.0,
) -> TrainRun:  # fmt: skip
    """AdamW for ``steps`` steps on ``next_batch(step)``; ``loss_fn(model, ids, targets)``
    defaults to the model's own loss (``model(ids, targets=targets).loss``). The learning rate
    is constant, or with ``warmup`` rises linearly for that many steps and then decays along a
    cosine to lr/10 (:func:`attnlab.train.schedule.learning_rate`). Gradients are clipped to
    norm ``clip`` (None: not clipped)."""
    loss_fn = loss_fn or (lambda m, ids, targets: m(ids, targets=targets).loss)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    losses = []
    start = time.perf_counter()
    for step in tqdm(range(steps), desc=desc, leave=False):
        if warmup is not None:
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, peak=lr, floor=lr / 10, warmup=warmup,
                                            total=steps)  # fmt: skip
        ids, targets = next_batch(step)
        loss = loss_fn(model, ids, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    model.eval()
    return TrainRun(losses, time.perf_counter() - start)


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
