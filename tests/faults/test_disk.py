"""A disk that fills while a checkpoint is saved, and a log line torn by a kill: the previous
checkpoint and log stay, no temporary file is left, and --resume reproduces the losses."""

import errno
from pathlib import Path

import pytest
import safetensors.torch
from tests.faults.harness import config, files, resume_and_compare, saved_step

from attnlab.train.trainer import train


def fill_disk_at_save(monkeypatch, n):
    """The ``n``-th checkpoint save writes part of its file, then fails as a full disk does."""
    real, count = safetensors.torch.save_file, [0]

    def save_file(tensors, filename, metadata=None):
        count[0] += 1
        if count[0] < n:
            return real(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(
    corpus, reference, tmp_path, monkeypatch
):
    fill_disk_at_save(monkeypatch, 4)
    checkpoint = tmp_path / "checkpoint.safetensors"
    with pytest.raises(OSError, match=f"cannot write {checkpoint}: No space left") as caught:
        train(config(corpus, tmp_path))
    assert caught.value.errno == errno.ENOSPC
    assert saved_step(tmp_path) == 60  # the third save, intact
    assert sorted(files(tmp_path)) == ["checkpoint.safetensors", "metrics.jsonl"]  # no temporary
    monkeypatch.undo()  # space again
    resume_and_compare(corpus, tmp_path, reference())


def test_a_torn_last_log_line_is_dropped_with_a_warning_on_resume(
    corpus, reference, tmp_path, monkeypatch
):
    fill_disk_at_save(monkeypatch, 3)  # a run that stopped at step 60, then a line torn
    with pytest.raises(OSError):
        train(config(corpus, tmp_path))
    monkeypatch.undo()
    log = tmp_path / "metrics.jsonl"
    log.write_text(log.read_text() + '{"step": 70, "loss": 3.6')
    with pytest.warns(UserWarning, match='metrics.jsonl: dropped a torn last line .*"step": 70'):
        resume_and_compare(corpus, tmp_path, reference())


def test_a_full_disk_while_logging_names_the_log_and_resume_drops_the_torn_line(
    corpus, reference, tmp_path, monkeypatch
):
    real_open, count = Path.open, [0]

    class HalfWritten:  # the 5th log line: half of it reaches the disk, then no space
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if path.name == "metrics.jsonl" and mode == "a":
            count[0] += 1
            return HalfWritten(f) if count[0] == 5 else f
        return f

    monkeypatch.setattr(Path, "open", open_)
    log = tmp_path / "metrics.jsonl"
    with pytest.raises(OSError, match=f"cannot write {log}: No space left"):
        train(config(corpus, tmp_path))
    monkeypatch.undo()
    assert saved_step(tmp_path) == 40 and not log.read_text().endswith("\n")
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        resume_and_compare(corpus, tmp_path, reference())


def test_a_bad_log_line_before_the_last_is_an_error_naming_it(corpus, tmp_path, monkeypatch):
    fill_disk_at_save(monkeypatch, 2)
    with pytest.raises(OSError):
        train(config(corpus, tmp_path))
    monkeypatch.undo()
    log = tmp_path / "metrics.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    before = files(tmp_path)
    with pytest.raises(ValueError, match=f"{log} line 2 is not a metrics record: 'garbage'"):
        train(config(corpus, tmp_path), resume=True)
    assert files(tmp_path) == before
