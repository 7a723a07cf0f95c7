"""A training run's folder (``out_dir``): the checks made before a run writes anything, what a
run does to the folder as it starts, and its metrics log.

A run folder holds ``checkpoint.safetensors`` and ``metrics.jsonl`` (the run's files) and may
hold anything else, which no run touches. A fresh run refuses a folder holding a run's files
unless asked to ``resume`` it or to ``overwrite`` it.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from attnlab.atomic import check_writable, failing_as, remove_temporaries, write_text
from attnlab.memory import ensure_fits, training_estimate
from attnlab.train.checkpoint import TrainingState, load_training
from attnlab.train.config import TrainConfig

__all__ = ["CHECKPOINT", "LOG", "check_run", "start_run", "truncate_log"]

CHECKPOINT, LOG = "checkpoint.safetensors", "metrics.jsonl"
RUN_FILES = (CHECKPOINT, LOG)


def check_run(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
              nproc: int = 1) -> TrainingState | None:  # fmt: skip
    """Every check of a run that can be made before it computes or writes anything (the
    config's own fields are checked when it is built): the processes, the batch split, the
    output folder, and the checkpoint to resume from, which is returned (None: a fresh run)."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"nproc must be an integer >= 1; got {nproc!r}")
    parts = config.accumulate * nproc
    if config.batch % parts:
        raise ValueError(f"batch must be divisible by accumulate × nproc = {config.accumulate} "
                         f"× {nproc} = {parts}; got {config.batch}")  # fmt: skip
    ensure_fits(training_estimate(config, processes=nproc))  # attnlab.memory: will it fit?
    if resume and overwrite:
        raise ValueError(f"resume and overwrite exclude each other: resume continues the run in "
                         f"{config.out_dir!r}, overwrite replaces it")  # fmt: skip
    folder = _writable_folder(config.out_dir)
    if resume:
        if not (folder / CHECKPOINT).is_file():
            raise FileNotFoundError(
                f"cannot resume: no checkpoint at {folder / CHECKPOINT}"
                + (" (the run stopped before its first checkpoint; start it again with "
                   "--overwrite)" if (folder / LOG).exists() else "")
            )  # fmt: skip
        return load_training(folder / CHECKPOINT)
    found = [name for name in RUN_FILES if (folder / name).exists()]
    if found and not overwrite:
        raise FileExistsError(
            f"out_dir {config.out_dir!r} holds a run ({', '.join(found)}): continue it with "
            "--resume, or replace it with --overwrite"
        )
    return None


def _writable_folder(out_dir: str) -> Path:
    """``out_dir`` as a Path, if it is a folder this process may write in or may create."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"out_dir {out_dir!r} is a file; expected a folder")
    try:
        check_writable(path)
    except NotADirectoryError as err:
        raise NotADirectoryError(f"out_dir {out_dir!r} cannot be created: {err}") from None
    except OSError as err:  # PermissionError, or what else the file system said
        raise type(err)(f"out_dir {out_dir!r} is not writable: {err}") from None
    return path


def start_run(config: TrainConfig, *, resume_step: int | None, overwrite: bool) -> Path:
    """What a run does to its folder before its first step, after :func:`check_run` (rank 0
    only): create it and write in it (or fail naming ``out_dir``), remove the temporary files
    of a save that was killed, then cut the log to the checkpoint's step (resuming) or remove
    the previous run's files (overwrite)."""
    folder = Path(config.out_dir)
    with failing_as(f"cannot write in out_dir {config.out_dir!r}"):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # the filesystem may refuse what access() let
            pass
    for name in RUN_FILES:
        remove_temporaries(folder / name)
    if resume_step is not None:
        truncate_log(folder / LOG, resume_step)
    elif overwrite:
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
    return folder


def truncate_log(path: Path, step: int) -> None:
    """On resume, drop log lines past the checkpoint: those steps are about to be redone. A
    torn last line (a kill mid-write) is dropped with a warning; a bad line before it is an
    error naming it."""
    if not path.exists():
        return
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    kept = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            logged = record["step"] if isinstance(record, dict) else None
            if not isinstance(logged, int):
                raise ValueError(f"step {logged!r}")
        except (ValueError, KeyError):
            if number < len(lines):
                raise ValueError(f"{path} line {number} is not a metrics record: {line[:80]!r}; "
                                 "remove the line (or the log) to resume") from None  # fmt: skip
            warnings.warn(f"{path}: dropped a torn last line (a run killed while writing it): "
                          f"{line[:80]!r}", stacklevel=2)  # fmt: skip
            break
        if logged <= step:
            kept.append(line)
    write_text(path, "".join(f"{line}\n" for line in kept))
