"""The training loop: AdamW, warm-up + cosine learning rate, gradient clipping and accumulation,
periodic validation, a progress bar, a JSON-lines metrics log and resumable checkpoints.

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
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from attnlab.atomic import write_text
from attnlab.train.checkpoint import load_training, restore_model, restore_optimizer, save_training
from attnlab.train.config import TrainConfig
from attnlab.train.distributed import World
from attnlab.train.schedule import learning_rate
from attnlab.train.tasks import build_task

__all__ = ["TrainResult", "train"]

LOG_EVERY = 10  # steps between training-loss log lines


@dataclass(frozen=True)
class TrainResult:
    steps: int  # optimiser steps completed
    val_loss: float | None  # last validation loss
    stopped: str  # "finished", "time limit", "interrupted"
    out_dir: Path


def _loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).loss


@torch.no_grad()
def evaluate(model: nn.Module, task, batches: int) -> float:  # type: ignore[no-untyped-def]
    was_training = model.training
    model.eval()
    losses = [float(_loss(model, task.batch(i, "val"))) for i in range(batches)]
    model.train(was_training)
    return sum(losses) / len(losses)


def _slice(batch: dict[str, torch.Tensor], part: int, parts: int) -> dict[str, torch.Tensor]:
    """Micro-batch ``part`` of ``parts`` (for accumulation and for data-parallel ranks)."""
    n = next(iter(batch.values())).shape[0]
    if n % parts:
        raise ValueError(f"batch {n} must be divisible by accumulate × processes = {parts}")
    size = n // parts
    return {k: v[part * size : (part + 1) * size] for k, v in batch.items()}


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
    ckpt_path, log_path = out / "checkpoint.safetensors", out / "metrics.jsonl"
    state = load_training(ckpt_path, expected=config) if resume else None
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
    ddp = world.wrap(model)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            _truncate_log(log_path, start)
        elif log_path.exists():
            log_path.unlink()
    stop = {"reason": None}

    def on_sigint(signum, frame):  # type: ignore[no-untyped-def]
        stop["reason"] = "interrupted"

    previous = signal.signal(signal.SIGINT, on_sigint) if world.is_main else None
    began, tokens, val_loss = time.perf_counter(), 0, None
    bar = tqdm(total=config.steps, initial=start, disable=not world.is_main, desc="train",
               unit="step", dynamic_ncols=True)  # fmt: skip
    step = start
    try:
        model.train()
        while step < config.steps:
            lr = learning_rate(step, peak=config.lr, floor=config.min_lr,
                               warmup=config.warmup, total=config.steps)  # fmt: skip
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(config.seed * 7919 + step * 131 + world.rank)  # dropout masks
            batch = task.batch(step)
            parts = config.accumulate * world.size
            loss_sum = 0.0
            for micro in range(config.accumulate):
                piece = _slice(batch, world.rank * config.accumulate + micro, parts)
                with world.no_sync(ddp, last=micro == config.accumulate - 1):
                    loss = _loss(ddp, piece) / config.accumulate
                    loss.backward()
                loss_sum += loss.item()
                tokens += task.tokens_in(piece) * world.size
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = world.mean(loss_sum)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training loss became {loss_value} at step {step}")
            elapsed = time.perf_counter() - began
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens / elapsed:,.0f}")
            record = {"step": step, "loss": loss_value, "lr": lr}
            at_eval = step % config.eval_interval == 0 or step == config.steps
            if config.time_limit and elapsed > config.time_limit:
                stop["reason"] = stop["reason"] or "time limit"
            stop_now = world.any(stop["reason"] is not None)
            if at_eval or stop_now:
                val_loss = evaluate(model, task, config.eval_batches)
                record["val_loss"] = val_loss
            if world.is_main and (step % LOG_EVERY == 0 or "val_loss" in record):
                record["tokens_per_s"] = tokens / elapsed
                record["elapsed_s"] = elapsed
                with log_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            if world.is_main and (at_eval or stop_now):
                save_training(ckpt_path, model, optimizer, step, config, task.tokenizer_json())
            if stop_now:
                break
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    reason = stop["reason"] or "finished"
    return TrainResult(step, val_loss, reason, out)
