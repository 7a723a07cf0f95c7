"""SIGKILL at any moment, a save included: --resume reproduces the uninterrupted losses exactly,
the previous run's files stay, and the temporary file of a killed save is removed."""

import random
import signal
import time

import pytest
from tests.faults.harness import files, flags, resume_and_compare, saved_step, start, wait_for


@pytest.mark.parametrize("trial", range(3))
def test_sigkill_at_a_random_moment_then_resume(corpus, reference, tmp_path, trial):
    expected = reference()
    note = tmp_path / "notes.txt"  # a file of the user's in the run folder: never touched
    note.write_text("mine")
    proc = start(flags(corpus, tmp_path), cli=False)
    wait_for(lambda: saved_step(tmp_path) is not None, proc)  # then a seeded moment past it
    time.sleep(random.Random(trial).uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = saved_step(tmp_path)
    assert before is not None and before % 20 == 0
    resume_and_compare(corpus, tmp_path, expected)
    assert note.read_text() == "mine"


# In the child: the Nth save writes half the file, then stalls until killed.
STALL = """
import pathlib, time, safetensors.torch
real, count = safetensors.torch.save_file, [0]
def stalling(tensors, filename, metadata=None):
    count[0] += 1
    real(tensors, filename, metadata=metadata)
    if count[0] == {n}:
        data = pathlib.Path(filename).read_bytes()
        pathlib.Path(filename).write_bytes(data[: len(data) // 2])
        pathlib.Path({marker!r}).touch()
        time.sleep(600)
safetensors.torch.save_file = stalling
"""


@pytest.mark.parametrize("save", [1, random.Random(13).randint(2, 7)])
def test_sigkill_in_the_middle_of_a_save_then_resume(corpus, reference, tmp_path, save):
    expected = reference()
    out, marker = tmp_path / "run", tmp_path / "stalled"
    proc = start(flags(corpus, out), script=STALL.format(n=save, marker=str(marker)), cli=False)
    wait_for(marker.exists, proc)
    before = files(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert files(out) == before  # the kill itself changes nothing
    stale = [p for p in out.iterdir() if p.name.startswith(".checkpoint.safetensors.")]
    assert len(stale) == 1  # the temporary folder of the killed save, its half-written file in it
    assert (stale[0] / "checkpoint.safetensors").is_file()
    assert saved_step(out) == (None if save == 1 else 20 * (save - 1))  # the previous one
    if save == 1:  # killed before any checkpoint: nothing to resume; say so, change nothing
        return
    resume_and_compare(corpus, out, expected)
