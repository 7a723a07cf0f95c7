"""Ctrl-C (SIGINT to the process group) with one and two processes: every process stops after
the same step, rank 0 saves, the exit status is 130 with no traceback, and --resume
reproduces the uninterrupted losses."""

import os
import re
import signal

import pytest
from tests.faults.harness import flags, losses, resume_and_compare, saved_step, start, wait_for

from attnlab.train.checkpoint import load_training


def interrupt(corpus, out, *extra, **changes):
    """Start `attnlab train`, Ctrl-C it once it has saved; its stdout."""
    proc = start([*flags(corpus, out, **changes), *extra])
    wait_for(lambda: saved_step(out) is not None, proc)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    step = int(re.search(r"interrupted at step (\d+)", stdout).group(1))
    assert load_training(out / "checkpoint.safetensors").step == step  # saved where it stopped
    assert max(losses(out)) == step
    return step


def test_ctrl_c_with_one_process_saves_exits_130_and_resumes(corpus, reference, tmp_path):
    step = interrupt(corpus, tmp_path)
    assert step < 160
    resume_and_compare(corpus, tmp_path, reference(), stopped_at=step)


@pytest.mark.slow
def test_ctrl_c_with_two_processes_saves_exits_130_and_resumes(corpus, reference, tmp_path):
    step = interrupt(corpus, tmp_path, "--nproc", "2", dropout=0.0)
    assert step < 160
    expected = reference(dropout=0.0)
    # two processes train as one up to the order of the sums: equal losses within 1e-5
    resume_and_compare(corpus, tmp_path, expected, stopped_at=step, tolerance=1e-5, dropout=0.0)
