"""The training loop: one, shared by ``attnlab train`` (:mod:`attnlab.train.trainer`) and every
experiment. What differs between them (validation, logs, checkpoints, stopping) is a
:class:`Callback`.

One step, for step = start .. steps − 1:

    lr ← schedule(step)                         (if a schedule is given)
    reseed dropout from (dropout_seed, step, rank)  (if a seed is given: resumable runs)
    batch ← next_batch(step)
    for each micro-batch (accumulation × data-parallel processes): (loss / accumulate).backward()
                                                 (the forward under autocast, if a dtype is given)
    clip the gradient norm to grad_clip          (if given)
    optimizer.step(); gradients set to None
    callbacks: should_stop, then on_step

The model is in training mode during the loop and in eval mode after it.

Dimension legend: B batch (all micro-batches of all processes), T tokens.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

from attnlab.train.distributed import World

__all__ = ["Batch", "Callback", "LoopResult", "StepResult", "train_loop"]

# A model's forward keyword arguments, (B, ...) each, with "targets" (−100 = no loss there).
Batch = dict[str, Tensor]


@dataclass(frozen=True)
class StepResult:
    step: int  # optimiser steps completed, this one included
    loss: float  # training loss of the step: mean over micro-batches and processes
    lr: float  # learning rate the step used
    tokens: int  # target tokens trained on since the loop started, all processes
    seconds: float  # wall time since the loop started


class Callback:
    """Hooks of :func:`train_loop`; override what you need. Every process calls them."""

    def should_stop(self, result: StepResult) -> str | None:
        """A reason to stop after this step (e.g. ``"interrupted"``), or None to go on. If any
        process gives a reason, every process stops after this step."""
        return None

    def on_step(self, result: StepResult, *, last: bool) -> None:
        """After every step; ``last`` if the loop ends after it (the final step, or a stop)."""


@dataclass(frozen=True)
class LoopResult:
    steps: int  # optimiser steps completed, including the ``start`` done before
    losses: list[float]  # training loss of every step this call ran
    seconds: float  # wall time of those steps
    stopped: str  # "finished", or the reason a callback gave for stopping


def train_loop(
    model: nn.Module, optimizer: torch.optim.Optimizer, next_batch: Callable[[int], Batch], *,
    steps: int, start: int = 0, schedule: Callable[[int], float] | None = None,
    grad_clip: float | None = None, accumulate: int = 1, world: World | None = None,
    dropout_seed: int | None = None, callbacks: Sequence[Callback] = (), desc: str = "train",
    autocast: torch.dtype | None = None,
) -> LoopResult:  # fmt: skip
    """Train ``model`` from step ``start`` to ``steps`` on ``next_batch(step)``; the loss is
    ``model(**batch).loss``. ``schedule(step)`` sets the learning rate of every step (None: the
    optimizer's own). ``grad_clip``: max global gradient norm (None: no clipping). With
    ``world`` of N processes each trains on its 1/N of every batch (gradients averaged by
    DistributedDataParallel). ``autocast`` (e.g. ``torch.bfloat16``): the forward and the loss
    run under ``torch.autocast`` in that dtype; weights, gradients and the optimizer stay
    float32."""
    world = world or World.single()
    ddp = world.wrap(model)
    parts = accumulate * world.size
    losses: list[float] = []
    tokens, reason = 0, None
    began = time.perf_counter()
    bar = tqdm(total=steps, initial=start, disable=not world.is_main, desc=desc, unit="step",
               leave=False, dynamic_ncols=True)  # fmt: skip
    model.train()
    try:
        for step in range(start, steps):
            if schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = schedule(step)
            if dropout_seed is not None:  # dropout masks as a function of (seed, step, rank)
                torch.manual_seed(dropout_seed * 7919 + step * 131 + world.rank)
            batch = next_batch(step)
            pieces = [_slice(batch, world.rank * accumulate + m, parts) for m in range(accumulate)]
            counts = [int((p["targets"] != -100).sum()) for p in pieces]  # scored targets
            total = world.sum(float(sum(counts)))  # in the whole batch, every process
            loss_sum = 0.0
            for micro, (piece, count) in enumerate(zip(pieces, counts, strict=True)):
                # The batch's loss is the mean over all its scored targets: each micro-batch's
                # mean weighs count / total (× processes: DDP averages gradients over them), so
                # padded micro-batches of unequal length add up to the whole batch's gradient.
                weight = count * world.size / total if total else 1.0 / accumulate
                with world.no_sync(ddp, last=micro == accumulate - 1):
                    with _autocast(autocast):
                        loss = ddp(**piece).loss * weight
                    loss.backward()
                loss_sum += loss.item()
            tokens += int(total)
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            result = StepResult(step + 1, world.mean(loss_sum), optimizer.param_groups[0]["lr"],
                                tokens, time.perf_counter() - began)  # fmt: skip
            losses.append(result.loss)
            bar.update(1)
            bar.set_postfix(loss=f"{result.loss:.3f}", tok_s=f"{tokens / result.seconds:,.0f}")
            reasons = [r for r in (c.should_stop(result) for c in callbacks) if r is not None]
            stop = world.any(bool(reasons))
            reason = reasons[0] if reasons else "stopped by another process" if stop else None
            for callback in callbacks:
                callback.on_step(result, last=stop or result.step == steps)
            if stop:
                break
    finally:
        bar.close()
        model.eval()
    return LoopResult(start + len(losses), losses, time.perf_counter() - began,
                      reason or "finished")  # fmt: skip


def _slice(batch: Batch, part: int, parts: int) -> Batch:
    """Micro-batch ``part`` of ``parts`` (for accumulation and for data-parallel ranks)."""
    n = next(iter(batch.values())).shape[0]
    if n % parts:
        raise ValueError(f"batch {n} must be divisible by accumulate × processes = {parts}")
    size = n // parts
    return {k: v[part * size : (part + 1) * size] for k, v in batch.items()}


def _autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if dtype is None else torch.autocast("cpu", dtype=dtype)
