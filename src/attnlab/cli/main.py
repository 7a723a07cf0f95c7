"""`attnlab` entry point. Each subcommand lives in its own module of :mod:`attnlab.cli` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a thin shim over a
library function. Add a subcommand by adding its module name to ``SUBCOMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import sys

import attnlab

# Module names under attnlab.cli, in the order they appear in `attnlab --help`.
SUBCOMMANDS: list[str] = [
    "trace",
    "inspect",
    "show",
    "train",
    "generate",
    "evaluate",
    "experiment",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnlab",
        description=(
            "attnlab: build attention, run it fast, train models with it, and see what it does. "
            "Run `attnlab COMMAND --help` for the options of one command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"attnlab {attnlab.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"attnlab.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:  # bad input: a clear message, no traceback
        print(f"attnlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
