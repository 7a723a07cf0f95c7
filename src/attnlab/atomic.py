"""Atomic file writes: write to a temporary file in the target's folder, then rename over the
target, so a reader (or a crash) never sees half a file. Files get the usual 0644 mode.

The temporary file lives in a temporary folder of its own (``.NAME.XXXXXXXX.SUFFIX/NAME``
next to ``NAME``), so whatever temporary files the writer makes beside it go there too:
safetensors 0.8 writes its own ``.tmpXXXXXX`` beside the file it is asked for, then renames it.
A process killed mid-write leaves that folder; :func:`remove_temporaries` removes it
(``attnlab train`` does at every start)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_write",
    "check_writable",
    "failing_as",
    "remove_temporaries",
    "temporaries",
    "write_json",
    "write_text",
]


def _prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary file, then rename it to ``path``. An
    OSError (a full disk, no permission) names ``path``, not the temporary file, and leaves
    neither the temporary file nor a changed ``path`` behind."""
    path = Path(path)
    folder = None
    try:
        with failing_as(f"cannot write {path}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            folder = tempfile.mkdtemp(dir=path.parent, prefix=_prefix(path), suffix=path.suffix)
            tmp = os.path.join(folder, path.name)
            write(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return path


@contextlib.contextmanager
def failing_as(description: str) -> Iterator[None]:
    """An OSError inside the block becomes one that says ``description`` (e.g. "cannot write
    runs/x/metrics.jsonl") before the system's reason, with the same errno (and subclass)."""
    try:
        yield
    except OSError as err:
        raise OSError(err.errno, f"{description}: {err.strerror or err}") from err


def temporaries(path: str | Path) -> list[Path]:
    """The temporary folders :func:`atomic_write` may have left for ``path`` (killed
    mid-write), and the temporary files earlier versions left."""
    path = Path(path)
    pattern = f"{_prefix(path)}{'?' * 8}{path.suffix}"  # mkstemp's 8 random characters
    return sorted(path.parent.glob(pattern))


def remove_temporaries(path: str | Path) -> list[Path]:
    """Remove what a killed :func:`atomic_write` of ``path`` left; returns it. Only one writer
    per file may run at a time (another's file in progress would go too)."""
    found = temporaries(path)
    for tmp in found:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return found


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: object) -> Path:
    return write_text(path, json.dumps(data, indent=1))


def check_writable(folder: str | Path) -> None:
    """Raise unless this process can create files in ``folder``, or in it once created: its
    nearest existing ancestor must be a folder (else NotADirectoryError) in which a file can be
    made (else PermissionError). Probed with an unnamed temporary file (O_TMPFILE where the
    system has it), because ``os.access`` says yes to root for every folder. Both errors name
    that ancestor; callers add the argument it came from."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.exists():  # the working folder itself was removed
        raise FileNotFoundError(f"{existing} does not exist")
    if not existing.is_dir():
        raise NotADirectoryError(f"{existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except PermissionError as err:
        raise PermissionError(f"folder {existing} is not writable ({err.strerror})") from None
    except OSError as err:  # a read-only or full file system, a folder that went away, …
        raise type(err)(f"folder {existing} cannot take a file ({err.strerror})") from None
