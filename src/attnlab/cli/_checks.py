"""Argument checks shared by every subcommand: numbers, texts, input and output paths.

Each check raises :class:`ValueError` with one line naming the option, what it expects and what
it got; ``attnlab.cli.main`` prints it as ``attnlab CMD: error: ...`` and exits with status 2.
Subcommands call them at the top of ``run()``, before loading a model or computing anything, so
a bad path or number costs nothing and no file is touched."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from pathlib import Path

from attnlab.atomic import check_writable

__all__ = ["input_dir", "input_file", "number", "output_dir", "output_file", "text"]


def number(flag: str, value: float | None, *, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None) -> None:  # fmt: skip
    """``value`` (None = not given, nothing to check) is finite and within the bounds."""
    if value is None:
        return
    limits = ((">=", at_least, operator.ge), (">", above, operator.gt),
              ("<=", at_most, operator.le))  # fmt: skip
    bounds = [(f"{op} {b}", test(value, b)) for op, b, test in limits if b is not None]
    finite = not isinstance(value, float) or math.isfinite(value)
    if not finite or not all(ok for _, ok in bounds):
        kind = "a finite number" if isinstance(value, float) else "an integer"
        rule = " ".join([kind, " and ".join(bound for bound, _ in bounds)]).strip()
        raise ValueError(f"{flag} must be {rule}; got {value}")


def text(flag: str, value: str | None, *, blank: bool = False) -> None:
    """``value`` is valid UTF-8 (undecodable bytes in ``argv`` arrive as lone surrogates), not
    empty and, unless ``blank``, more than white space."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start].encode("utf-8", "surrogateescape")
        raise ValueError(
            f"{flag} is not valid UTF-8: byte 0x{bad.hex()} at character {err.start}"
        ) from None
    if not (value if blank else value.strip()):
        raise ValueError(f"{flag} must be a non-empty text; got {value!r}")


def input_file(flag: str, path: str, *, what: str = "file") -> Path:
    """An existing, readable regular file (``what`` names it in messages: "checkpoint")."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag}: {path} is a folder; expected a {what} file")
    if not p.is_file():
        raise ValueError(f"{flag}: no {what} at {path}")
    _readable(flag, path, lambda: open(p, "rb").close())
    return p


def input_dir(flag: str, path: str, *, what: str = "folder") -> Path:
    """An existing, readable folder (``what`` names it in messages: "checkpoint folder")."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag}: {path} is a file; expected a {what}")
    if not p.is_dir():
        raise ValueError(f"{flag}: no {what} at {path}")
    _readable(flag, path, lambda: next(iter(p.iterdir()), None))
    return p


def output_file(flag: str, path: str, *, suffixes: Iterable[str] = ()) -> Path:
    """A file that can be written: not a folder, with one of ``suffixes`` (if given), in a
    folder that exists, or can be made, and is writable."""
    p = Path(path)
    suffixes = tuple(suffixes)
    if suffixes and p.suffix not in suffixes:
        raise ValueError(f"{flag} must end in one of {suffixes}; got {path!r}")
    if p.is_dir():
        raise ValueError(f"{flag} {path} is a folder; expected a file name")
    _writable(flag, path, p.parent)
    return p


def output_dir(flag: str, path: str, *, files: Iterable[str] = ()) -> Path:
    """A folder that can be written: not a file, writable (or creatable), and none of the
    ``files`` to be written into it is a folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {path} is a file; expected a folder")
    for name in files:
        if (p / name).is_dir():
            raise ValueError(f"{flag} {path}: {p / name} is a folder, where a file is written")
    _writable(flag, path, p)
    return p


def _writable(flag: str, given: str, folder: Path) -> None:
    try:
        check_writable(folder)
    except OSError as err:
        raise ValueError(f"cannot write {flag} {given}: {err}") from None


def _readable(flag: str, given: str, probe: Callable[[], object]) -> None:
    try:
        probe()
    except OSError as err:
        raise ValueError(f"cannot read {flag} {given}: {err.strerror}") from None
