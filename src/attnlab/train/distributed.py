"""Data-parallel training with torch.distributed (gloo backend, CPU).

``attnlab train --nproc N`` starts N processes on this machine (127.0.0.1). Every process builds
the same global batch and trains on its own slice; DistributedDataParallel averages the
gradients, so N processes give the same updates as one process with the same global batch.
Only rank 0 writes checkpoints and logs.

Across machines, start the same command with torchrun on each host, e.g. on 2 hosts:
    torchrun --nnodes 2 --nproc-per-node 2 --node-rank R --master-addr HOST0 --master-port 29500 \\
        -m attnlab train --preset shakespeare-char
torchrun sets RANK / WORLD_SIZE / MASTER_ADDR, which :func:`World.from_env` reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

from attnlab.train.run_folder import check_run

if TYPE_CHECKING:  # the trainer imports World from here
    from attnlab.train.config import TrainConfig
    from attnlab.train.trainer import TrainResult

__all__ = ["STOP_SIGNALS", "World", "free_port", "launch", "spawn"]

# Signals that stop a run after its current step, saving (Ctrl-C; `kill`, `docker stop`,
# schedulers), → the reason the run gives.
STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


@dataclass(frozen=True)
class World:
    rank: int
    size: int

    @classmethod
    def single(cls) -> World:
        return cls(0, 1)

    @classmethod
    def from_env(cls) -> World:
        """Join the process group described by torchrun's environment variables."""
        rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=rank, world_size=size)
        return cls(rank, size)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.size == 1:
            return model
        return nn.parallel.DistributedDataParallel(model)

    @contextlib.contextmanager
    def no_sync(self, ddp: nn.Module, last: bool) -> Iterator[None]:
        """Skip the gradient all-reduce on all but the last accumulation micro-step."""
        if self.size > 1 and not last:
            with ddp.no_sync():
                yield
        else:
            yield

    def mean(self, value: float) -> float:
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.size

    def sum(self, value: float) -> float:
        """``value`` summed over every process."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t)

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (e.g. rank 0 caught SIGINT)."""
        if self.size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t)
        return bool(t.item() > 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    rank: int, size: int, port: int, config: TrainConfig, resume: bool, overwrite: bool, results
) -> None:  # type: ignore[no-untyped-def]
    """One process of :func:`spawn`: rank 0 puts ("result", TrainResult) on ``results``; a
    process that fails puts ("error", rank, exception) and exits with status 1."""
    from attnlab.train.trainer import train

    for signum in STOP_SIGNALS:  # train() catches them while it trains
        signal.signal(signum, signal.SIG_IGN)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        result = train(config, resume=resume, overwrite=overwrite, world=World(rank, size))
        if rank == 0:
            results.put(("result", result))
    except Exception as err:
        try:
            results.put(("error", rank, err))
        except Exception:  # not picklable: its message then
            results.put(("error", rank, RuntimeError(f"{type(err).__name__}: {err}")))
        sys.exit(1)
    finally:
        dist.destroy_process_group()


def spawn(config: TrainConfig, nproc: int, *, resume: bool = False, overwrite: bool = False
          ) -> TrainResult:  # fmt: skip
    """Train with ``nproc`` local processes; returns rank 0's result, or raises the first
    error a process raised (rank 0's if it failed). SIGINT (Ctrl-C) and SIGTERM reach every
    process, which stop together after the current step; rank 0 saves."""
    import torch.multiprocessing as mp

    check_run(config, resume=resume, overwrite=overwrite, nproc=nproc)  # errors here, not N times
    results = mp.get_context("spawn").SimpleQueue()
    args = (nproc, free_port(), config, resume, overwrite, results)
    failed: Exception | None = None
    quiet = logging.getLogger("torch.multiprocessing.spawn")  # "Terminating process ..."
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with _SignalForwarder() as forwarder:
            context = mp.start_processes(_worker, args=args, nprocs=nproc, join=False,
                                         start_method="spawn")  # fmt: skip
            forwarder.started(context.processes)
            while not context.join(timeout=1.0, grace_period=10.0):
                pass
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:
        failed = err
    finally:
        quiet.setLevel(level)
    messages = []
    while not results.empty():
        messages.append(results.get())
    found = [m[1] for m in messages if m[0] == "result"]
    if found and failed is None:
        return found[0]
    errors = sorted((m for m in messages if m[0] == "error"), key=lambda m: m[1])
    if errors:
        raise errors[0][2]
    raise RuntimeError(f"a training process failed: {failed}")


class _SignalForwarder:
    """Inside the block the :data:`STOP_SIGNALS` are blocked until :meth:`started`, so
    processes started before it start with them blocked and cannot die of a Ctrl-C while they
    prepare (each unblocks them as it starts training); after it, such a signal this process
    receives is sent on to each."""

    def __init__(self) -> None:
        self.children: list = []
        self.active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> _SignalForwarder:
        if self.active:
            self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
            self.previous = {s: signal.signal(s, self.forward) for s in STOP_SIGNALS}
        return self

    def started(self, processes: list) -> None:
        self.children.extend(processes)
        if self.active:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)

    def forward(self, signum: int, frame: object) -> None:
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
            for signum, handler in self.previous.items():
                signal.signal(signum, handler)


def launch(config: TrainConfig, *, resume: bool = False, overwrite: bool = False, nproc: int = 1
           ) -> TrainResult:  # fmt: skip
    """Train in the processes asked for: under torchrun (``WORLD_SIZE`` > 1 in the environment)
    as this process's rank, else ``nproc`` local processes, else this process alone."""
    from attnlab.train.trainer import train

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun (one or many hosts)
        return train(config, resume=resume, overwrite=overwrite, world=World.from_env())
    if nproc == 1:
        return train(config, resume=resume, overwrite=overwrite)
    return spawn(config, nproc, resume=resume, overwrite=overwrite)  # checks nproc
