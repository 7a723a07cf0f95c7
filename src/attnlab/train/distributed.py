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
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:  # the trainer imports World from here
    from attnlab.train.config import TrainConfig
    from attnlab.train.trainer import TrainResult

__all__ = ["World", "free_port", "launch", "spawn"]


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


def _worker(rank: int, size: int, port: int, config: TrainConfig, resume: bool, results) -> None:  # type: ignore[no-untyped-def]
    from attnlab.train.trainer import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        result = train(config, resume=resume, world=World(rank, size))
        if rank == 0:
            results.put(result)
    finally:
        dist.destroy_process_group()


def spawn(config: TrainConfig, nproc: int, *, resume: bool = False) -> TrainResult:
    """Train with ``nproc`` local processes; returns rank 0's result."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ValueError(f"nproc must be at least 1; got {nproc}")
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(nproc, free_port(), config, resume, results),
                       nprocs=nproc, join=True, start_method="spawn")  # fmt: skip
    return results.get()


def launch(config: TrainConfig, *, resume: bool = False, nproc: int = 1) -> TrainResult:
    """Train in the processes asked for: under torchrun (``WORLD_SIZE`` > 1 in the environment)
    as this process's rank, else ``nproc`` local processes, else this process alone."""
    from attnlab.train.trainer import train

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun (one or many hosts)
        return train(config, resume=resume, world=World.from_env())
    if nproc > 1:
        return spawn(config, nproc, resume=resume)
    return train(config, resume=resume)
