"""What a run checks before writing anything, and what it does to its folder as it starts."""

import os
import re

import pytest

from attnlab.train.config import TrainConfig
from attnlab.train.run_folder import check_run, start_run, truncate_log


def files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("nproc", [0, -2])
def test_the_number_of_processes_is_at_least_one(tmp_path, nproc):
    with pytest.raises(ValueError, match=f"nproc must be an integer >= 1; got {nproc}"):
        check_run(TrainConfig(out_dir=str(tmp_path)), nproc=nproc)


@pytest.mark.parametrize(("batch", "accumulate", "nproc"), [(5, 2, 1), (6, 2, 2)])
def test_the_batch_splits_into_micro_batches_of_every_process(tmp_path, batch, accumulate, nproc):
    config = TrainConfig(batch=batch, accumulate=accumulate, out_dir=str(tmp_path))
    message = (f"batch must be divisible by accumulate × nproc = {accumulate} × {nproc} = "
               f"{accumulate * nproc}; got {batch}")  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(message)):
        check_run(config, nproc=nproc)


def a_run(folder):
    folder.mkdir(exist_ok=True)
    (folder / "checkpoint.safetensors").write_bytes(b"weights")
    (folder / "metrics.jsonl").write_text('{"step": 10, "loss": 1.0}\n')
    return files(folder)


def test_a_fresh_run_refuses_a_folder_holding_a_run(tmp_path):
    before = a_run(tmp_path)
    message = (f"out_dir '{tmp_path}' holds a run (checkpoint.safetensors, metrics.jsonl): "
               "continue it with --resume, or replace it with --overwrite")  # fmt: skip
    with pytest.raises(FileExistsError, match=re.escape(message)):
        check_run(TrainConfig(out_dir=str(tmp_path)))
    assert check_run(TrainConfig(out_dir=str(tmp_path)), overwrite=True) is None
    assert files(tmp_path) == before  # checks write nothing
    (tmp_path / "checkpoint.safetensors").unlink()
    with pytest.raises(FileExistsError, match=r"holds a run \(metrics.jsonl\)"):
        check_run(TrainConfig(out_dir=str(tmp_path)))


def test_a_folder_with_other_files_is_no_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert check_run(TrainConfig(out_dir=str(tmp_path))) is None


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="resume and overwrite exclude each other"):
        check_run(TrainConfig(out_dir=str(tmp_path)), resume=True, overwrite=True)


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume: no checkpoint at .*safetensors$"):
        check_run(TrainConfig(out_dir=str(tmp_path)), resume=True)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match="before its first checkpoint; .* --overwrite"):
        check_run(TrainConfig(out_dir=str(tmp_path)), resume=True)


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "FILE"
    file.write_text("x")
    with pytest.raises(NotADirectoryError, match=f"out_dir '{file}' is a file; expected a folder"):
        check_run(TrainConfig(out_dir=str(file)))
    inside = file / "run"
    with pytest.raises(NotADirectoryError, match=f"out_dir '{inside}' cannot be created: {file}"):
        check_run(TrainConfig(out_dir=str(inside)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_folder_is_refused_before_anything(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match=f"out_dir '{locked}/run' is not writable"):
        check_run(TrainConfig(out_dir=str(locked / "run")))


def test_a_folder_the_filesystem_refuses_is_named_as_given():
    config = TrainConfig(out_dir="/proc/attnlab-run")  # even root may not write there
    with pytest.raises(OSError, match="out_dir '/proc/attnlab-run'"):
        check_run(config)
        start_run(config, resume_step=None, overwrite=False)


def test_start_removes_the_temporary_files_of_a_killed_save(tmp_path):
    a_run(tmp_path)
    (tmp_path / ".checkpoint.safetensors.abcd1234.safetensors").write_bytes(b"half")
    (tmp_path / ".metrics.jsonl.x_9zzzzz.jsonl").write_text("half")
    (tmp_path / ".checkpoint.safetensors.mine").write_text("not a temporary file")
    killed = tmp_path / ".checkpoint.safetensors.efgh_678.safetensors"  # today's: a folder
    killed.mkdir()
    (killed / ".tmpAbC12x").write_bytes(b"safetensors' own temporary file")
    start_run(TrainConfig(out_dir=str(tmp_path)), resume_step=10, overwrite=False)
    assert not killed.exists()
    assert sorted(files(tmp_path)) == [".checkpoint.safetensors.mine",
                                       "checkpoint.safetensors", "metrics.jsonl"]  # fmt: skip


def test_overwrite_removes_the_previous_run_only(tmp_path):
    a_run(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    start_run(TrainConfig(out_dir=str(tmp_path)), resume_step=None, overwrite=True)
    assert files(tmp_path) == {"notes.txt": b"mine"}


def test_resume_cuts_the_log_to_the_checkpoint(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in (10, 20, 30)) + "\n")
    truncate_log(log, 20)
    assert log.read_text() == '{"step": 10, "loss": 1.0}\n{"step": 20, "loss": 1.0}\n'


@pytest.mark.parametrize("torn", ['{"step": 30, "lo', '{"step": "3', "\x00\x00\x00"])
def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path, torn):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 10, "loss": 1.0}\n' + torn)
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        truncate_log(log, 20)
    assert log.read_text() == '{"step": 10, "loss": 1.0}\n'
