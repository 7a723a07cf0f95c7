"""Fault injection for `attnlab train` (helpers: :mod:`tests.faults.harness`).

Every test runs the same tiny training run (1 layer, d_model 16, one thread), interrupts it
(SIGKILL, SIGINT, a full disk, a torn log line), resumes it and compares the losses with the
uninterrupted run's, exactly."""

import pytest
import torch
from tests.faults.harness import config, losses

from attnlab.data.shakespeare import read_plays
from attnlab.train.trainer import train


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-for-bit equal losses need the same reduction order: one thread, as the children."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "plays.txt"
    path.write_text(read_plays(limit=1)[:20_000], encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reference(corpus, tmp_path_factory):
    """The uninterrupted run's logged losses, by dropout setting."""
    found = {}

    def run(dropout=0.1):
        if dropout not in found:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            out = tmp_path_factory.mktemp("reference")
            train(config(corpus, out, dropout=dropout))
            torch.set_num_threads(threads)
            found[dropout] = losses(out)
        return found[dropout]

    return run
