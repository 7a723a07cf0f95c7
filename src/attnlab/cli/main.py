"""`attnlab` entry point. Each subcommand lives in its own module of :mod:`attnlab.cli` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a thin shim over a
library function. Add a subcommand by adding its module name to ``SUBCOMMANDS``.

The error contract: every failure prints one line on stderr, ``attnlab CMD: error: ...``, and
exits with status 2 (argparse's own usage errors print the usage, then that line, and exit 2
too). ``--debug`` (before or after the command) or ``ATTNLAB_DEBUG=1`` prints the traceback
first. Ctrl-C exits with 130, as shells expect; a closed stdout (``| head``) with 141."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback

import attnlab

# Module names under attnlab.cli, in the order they appear in `attnlab --help`.
SUBCOMMANDS: list[str] = [
    "trace",
    "inspect",
    "show",
    "explain",
    "train",
    "generate",
    "evaluate",
    "experiment",
    "demo",
    "serve",
]
DEBUG_HELP = "on an error, print the traceback too (or set ATTNLAB_DEBUG=1)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnlab",
        description=(
            "attnlab: build attention, run it fast, train models with it, and see what it does. "
            "Run `attnlab COMMAND --help` for the options of one command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"attnlab {attnlab.__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"attnlab.cli.{name}").register(sub)
    for command in sub.choices.values():  # given after the command, it must not reset the top one
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=DEBUG_HELP)  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    command, args = "attnlab", None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        command = f"attnlab {args.command}"
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _debug_traceback(args)
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`attnlab ... | head`): not an error
        with contextlib.suppress(OSError, ValueError):  # no file descriptor under pytest
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        _debug_traceback(args)
        print(f"{command}: error: {describe(err)}", file=sys.stderr)
        return 2


def describe(err: BaseException) -> str:
    """One line for the user: the message of an error about their input (ValueError, OSError),
    the error's type and message otherwise."""
    if isinstance(err, OSError) and err.strerror:  # "[Errno 2] ..." says nothing to a user
        message = err.strerror if err.filename is None else f"{err.filename}: {err.strerror}"
    elif isinstance(err, (ValueError, OSError)):
        message = str(err) or type(err).__name__
    else:
        message = f"{type(err).__name__}: {err} (--debug shows where)"
    return " ".join(message.split())


def _debug_traceback(args: argparse.Namespace | None) -> None:
    if getattr(args, "debug", False) or os.environ.get("ATTNLAB_DEBUG", "") not in ("", "0"):
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
