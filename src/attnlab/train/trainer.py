"""`attnlab train`'s runs: AdamW, warm-up + cosine learning rate, gradient clipping and
accumulation, periodic validation, a progress bar, a JSON-lines metrics log and resumable
checkpoints. The steps are :func:`attnlab.train.loop.train_loop`'s; what happens between them
(validation, log, checkpoints, Ctrl-C and the time limit) is :class:`RunMonitor`.

Determinism: batches are a function of (seed, step) and dropout is re-seeded from (seed, step,
rank) before every step, so a run resumed from a checkpoint logs exactly the losses the
uninterrupted run would have (tested by killing a run with SIGKILL and resuming it).

Files in ``config.out_dir``: ``checkpoint.safetensors`` (see :mod:`attnlab.train.checkpoint`),
``metrics.jsonl`` (one JSON object per logged step), written by rank 0 only.
"""

from __future__ import annotations

import json
import math
import signal
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.atomic import write_text
from attnlab.models.checkpoint import restore_model
from attnlab.train.checkpoint import load_training, restore_optimizer, save_training
from attnlab.train.config import TrainConfig
from attnlab.train.distributed import World
from attnlab.train.loop import Callback, StepResult, train_loop
from attnlab.train.schedule import learning_rate
from attnlab.train.tasks import LMTask, TranslationTask, build_task

__all__ = ["RunMonitor", "TrainResult", "train"]

LOG_EVERY = 10  # steps between training-loss log lines


@dataclass(frozen=True)
class TrainResult:
    steps: int  # optimiser steps completed
    val_loss: float | None  # last validation loss
    stopped: str  # "finished", "time limit", "interrupted"
    out_dir: Path


@torch.no_grad()
def evaluate(model: nn.Module, task: LMTask | TranslationTask, batches: int) -> float:
    was_training = model.training
    model.eval()
    losses = [float(model(**task.batch(i, "val")).loss) for i in range(batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


class RunMonitor(Callback):
    """Validation and a checkpoint every ``eval_interval`` steps and at the end; a log line every
    ``LOG_EVERY`` steps and at each validation (rank 0 only); a stop on Ctrl-C (``interrupt``)
    or past ``time_limit``."""

    def __init__(self, config: TrainConfig, task: LMTask | TranslationTask, model: nn.Module,
                 optimizer: torch.optim.Optimizer, world: World) -> None:  # fmt: skip
        self.config, self.task, self.model, self.optimizer = config, task, model, optimizer
        self.world = world
        out = Path(config.out_dir)
        self.checkpoint, self.log = out / "checkpoint.safetensors", out / "metrics.jsonl"
        self.reason: str | None = None  # why to stop, once known
        self.val_loss: float | None = None  # the last validation loss

    def interrupt(self, signum: int, frame: object) -> None:  # a SIGINT handler
        self.reason = "interrupted"

    def should_stop(self, result: StepResult) -> str | None:
        if self.config.time_limit and result.seconds > self.config.time_limit:
            self.reason = self.reason or "time limit"
        return self.reason

    def on_step(self, result: StepResult, *, last: bool) -> None:
        if not math.isfinite(result.loss):
            raise FloatingPointError(f"training loss became {result.loss} at step {result.step}")
        c = self.config
        record: dict[str, float] = {"step": result.step, "loss": result.loss, "lr": result.lr}
        at_eval = result.step % c.eval_interval == 0 or last
        if at_eval:
            self.val_loss = record["val_loss"] = evaluate(self.model, self.task, c.eval_batches)
        if not self.world.is_main:
            return
        if result.step % LOG_EVERY == 0 or at_eval:
            record["tokens_per_s"] = result.tokens / result.seconds
            record["elapsed_s"] = result.seconds
            with self.log.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if at_eval:
            save_training(self.checkpoint, self.model, self.optimizer, result.step, c,
                          self.task.tokenizer_json())  # fmt: skip


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log lines past the checkpoint: those steps are about to be redone."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]  # fmt: skip
    write_text(path, "".join(f"{line}\n" for line in kept))


def train(config: TrainConfig, *, resume: bool = False, world: World | None = None) -> TrainResult:
    """Train per ``config``; with ``resume``, continue from ``out_dir``'s checkpoint."""
    world = world or World.single()
    out = Path(config.out_dir)
    state = load_training(out / "checkpoint.safetensors", expected=config) if resume else None
    task = build_task(config, state.tokenizer_json if state else None)
    torch.manual_seed(config.seed)  # the same initial weights in every process and every run
    model = task.build_model()
    if state is not None:
        restore_model(model, state.model_state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    if state is not None:
        restore_optimizer(optimizer, state.optimizer_state)  # in the parameters' layout
    start = state.step if state else 0
    monitor = RunMonitor(config, task, model, optimizer, world)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            _truncate_log(monitor.log, start)
        elif monitor.log.exists():
            monitor.log.unlink()
    previous = signal.signal(signal.SIGINT, monitor.interrupt) if world.is_main else None
    try:
        done = train_loop(
            model, optimizer, task.batch, steps=config.steps, start=start,
            schedule=lambda step: learning_rate(step, peak=config.lr, floor=config.min_lr,
                                                warmup=config.warmup, total=config.steps),
            grad_clip=config.grad_clip or None, accumulate=config.accumulate, world=world,
            dropout_seed=config.seed, callbacks=[monitor],
        )  # fmt: skip
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return TrainResult(done.steps, monitor.val_loss, monitor.reason or "finished", out)
