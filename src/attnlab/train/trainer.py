"""`attnlab train`'s runs: AdamW, warm-up + cosine learning rate, gradient clipping and
accumulation, periodic validation, a progress bar, a JSON-lines metrics log and resumable
checkpoints. The steps are :func:`attnlab.train.loop.train_loop`'s; what happens between them
(validation, log, checkpoints, Ctrl-C and the time limit) is :class:`RunMonitor`.

Determinism: batches are a function of (seed, step) and dropout is re-seeded from (seed, step,
rank) before every step, so a run resumed from a checkpoint logs exactly the losses the
uninterrupted run would have (tested by killing a run with SIGKILL and resuming it).

Files in ``config.out_dir``: ``checkpoint.safetensors`` (see :mod:`attnlab.train.checkpoint`),
``metrics.jsonl`` (one JSON object per logged step), written by rank 0 only; what is checked
before they are written, and what a run does to its folder: :mod:`attnlab.train.run_folder`.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.atomic import failing_as
from attnlab.models.checkpoint import restore_model
from attnlab.train.checkpoint import check_resumable, restore_optimizer, save_training
from attnlab.train.config import TrainConfig
from attnlab.train.distributed import STOP_SIGNALS, World
from attnlab.train.loop import Callback, StepResult, train_loop
from attnlab.train.run_folder import CHECKPOINT, LOG, check_run, start_run
from attnlab.train.schedule import learning_rate
from attnlab.train.tasks import LMTask, TranslationTask, build_task

__all__ = ["RunMonitor", "TrainResult", "train"]

LOG_EVERY = 10  # steps between training-loss log lines


@dataclass(frozen=True)
class TrainResult:
    steps: int  # optimiser steps completed
    val_loss: float | None  # last validation loss
    stopped: str  # "finished", "time limit", "interrupted" (SIGINT), "terminated" (SIGTERM)
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
    ``LOG_EVERY`` steps and at each validation (rank 0 only); a stop on Ctrl-C or SIGTERM
    (``interrupt``) or past ``time_limit``; an error, saving nothing, when the loss or the
    weights stop being finite. ``saved``: the step of the checkpoint in the folder (None: none
    yet)."""

    def __init__(self, config: TrainConfig, task: LMTask | TranslationTask, model: nn.Module,
                 optimizer: torch.optim.Optimizer, world: World, saved: int | None = None
                 ) -> None:  # fmt: skip
        self.config, self.task, self.model, self.optimizer = config, task, model, optimizer
        self.world, self.saved = world, saved
        out = Path(config.out_dir)
        self.checkpoint, self.log = out / CHECKPOINT, out / LOG
        self.reason: str | None = None  # why to stop, once known
        self.val_loss: float | None = None  # the last validation loss

    def interrupt(self, signum: int, frame: object) -> None:  # a STOP_SIGNALS handler
        self.reason = STOP_SIGNALS[signal.Signals(signum)]

    def should_stop(self, result: StepResult) -> str | None:
        if self.config.time_limit and result.seconds > self.config.time_limit:
            self.reason = self.reason or "time limit"
        return self.reason

    def on_step(self, result: StepResult, *, last: bool) -> None:
        if not math.isfinite(result.loss):
            raise self.diverged(result.step, f"the training loss is {result.loss}")
        c = self.config
        record: dict[str, float] = {"step": result.step, "loss": result.loss, "lr": result.lr}
        at_eval = result.step % c.eval_interval == 0 or last
        if at_eval:
            self.val_loss = record["val_loss"] = evaluate(self.model, self.task, c.eval_batches)
            if not math.isfinite(self.val_loss):
                raise self.diverged(result.step, f"the validation loss is {self.val_loss}")
            if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                raise self.diverged(result.step, "the weights are no longer finite")
        if not self.world.is_main:
            return
        if result.step % LOG_EVERY == 0 or at_eval:
            record["tokens_per_s"] = result.tokens / result.seconds
            record["elapsed_s"] = result.seconds
            with failing_as(f"cannot write {self.log}"), self.log.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if at_eval:
            save_training(self.checkpoint, self.model, self.optimizer, result.step, c,
                          self.task.tokenizer_json(),
                          corpus_sha256=self.task.corpus_sha256)  # fmt: skip
            self.saved = result.step

    def diverged(self, step: int, what: str) -> FloatingPointError:
        kept = ("no checkpoint was saved" if self.saved is None
                else f"{self.checkpoint} keeps step {self.saved}")  # fmt: skip
        return FloatingPointError(
            f"training diverged at step {step}: {what}; nothing was saved over the last good "
            f"checkpoint ({kept}); try a lower lr or a grad_clip"
        )


@contextlib.contextmanager
def _stop_signals_call(handler: Callable[[int, object], None]) -> Iterator[None]:
    """The :data:`STOP_SIGNALS` call ``handler`` inside the block, and are unblocked (a process
    started by :func:`attnlab.train.distributed.spawn` starts with them blocked and ignored, so
    a Ctrl-C while it prepares waits for the loop). Off the main thread signals cannot be
    caught."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          world: World | None = None) -> TrainResult:  # fmt: skip
    """Train per ``config``; with ``resume``, continue from ``out_dir``'s checkpoint; with
    ``overwrite``, replace the run in ``out_dir`` (without either, a folder holding a run is
    refused). Nothing is written before every check has passed (:func:`check_run`, the
    corpus, the checkpoint against the config). Ctrl-C or SIGTERM stops after the current
    step, saving."""
    world = world or World.single()
    state = check_run(config, resume=resume, overwrite=overwrite, nproc=world.size)
    task = build_task(config, state.tokenizer_json if state else None)
    if state is not None:
        check_resumable(state, config, task.corpus_sha256)
    torch.manual_seed(config.seed)  # the same initial weights in every process and every run
    model = task.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    if state is not None:
        restore_model(model, state.model_state, state.path)
        restore_optimizer(optimizer, state.optimizer_state, state.path)  # the params' layout
    start = state.step if state else 0
    if world.is_main:
        start_run(config, resume_step=state.step if state else None, overwrite=overwrite)
    monitor = RunMonitor(config, task, model, optimizer, world, state.step if state else None)
    with _stop_signals_call(monitor.interrupt):
        done = train_loop(
            model, optimizer, task.batch, steps=config.steps, start=start,
            schedule=lambda step: learning_rate(step, peak=config.lr, floor=config.min_lr,
                                                warmup=config.warmup, total=config.steps),
            grad_clip=config.grad_clip or None, accumulate=config.accumulate, world=world,
            dropout_seed=config.seed, callbacks=[monitor],
            autocast=torch.bfloat16 if config.dtype == "bfloat16" else None,
        )  # fmt: skip
    return TrainResult(done.steps, monitor.val_loss, done.stopped, Path(config.out_dir))
