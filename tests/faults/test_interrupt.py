"""Ctrl-C (SIGINT to the process group) with one and two processes, and SIGTERM: every process
stops after the same step, rank 0 saves, the exit status is 128 + the signal's number with no
traceback, and --resume reproduces the uninterrupted losses."""

import os
import re
import signal

import pytest
from tests.faults.harness import flags, losses, resume_and_compare, saved_step, start, wait_for

from attnlab.train.checkpoint import load_training


def interrupt(corpus, out, *extra, signum=signal.SIGINT, send=os.killpg, **changes):
    """Start `attnlab train`, ``send`` it ``signum`` once it has saved; the step it stopped at."""
    proc = start([*flags(corpus, out, **changes), *extra])
    wait_for(lambda: saved_step(out) is not None, proc)
    send(proc.pid, signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    reason = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}[signum]
    step = int(re.search(rf"{reason} at step (\d+)", stdout).group(1))
    assert load_training(out / "checkpoint.safetensors").step == step  # saved where it stopped
    assert max(losses(out)) == step
    return step


@pytest.mark.parametrize(("signum", "send"), [(signal.SIGINT, os.killpg),  # Ctrl-C
                                               (signal.SIGTERM, os.kill)])  # fmt: skip
def test_a_signal_to_one_process_saves_exits_128_plus_it_and_resumes(
    corpus, reference, tmp_path, signum, send
):
    step = interrupt(corpus, tmp_path, signum=signum, send=send)
    assert step < 160
    resume_and_compare(corpus, tmp_path, reference(), stopped_at=step)


@pytest.mark.slow
def test_ctrl_c_with_two_processes_saves_exits_130_and_resumes(corpus, reference, tmp_path):
    step = interrupt(corpus, tmp_path, "--nproc", "2", dropout=0.0)
    assert step < 160
    expected = reference(dropout=0.0)
    # two processes train as one up to the order of the sums: equal losses within 1e-5
    resume_and_compare(corpus, tmp_path, expected, stopped_at=step, tolerance=1e-5, dropout=0.0)
