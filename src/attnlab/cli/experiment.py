"""`attnlab experiment NAME`: run one of the notes' claims as an experiment."""

from __future__ import annotations

import argparse
import json

from attnlab.cli import _checks
from attnlab.experiments.runner import EXPERIMENTS, run_experiment


def register(sub: argparse._SubParsersAction) -> None:
    listing = "; ".join(f"{name}: {about}" for name, (_, _, about) in EXPERIMENTS.items())
    p = sub.add_parser(
        "experiment",
        help="run an experiment that tests one of the notes' claims",
        description=f"Run an experiment; it writes a figure and a JSON of its numbers. {listing}",
    )
    p.add_argument("name", nargs="?", help="experiment to run")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--quick", action="store_true", help="reduced setting (seconds, for tests)")
    p.add_argument("--out", default="experiments-output", help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list or args.name is None:
        for name, (_, _, about) in EXPERIMENTS.items():
            print(f"{name:<12} {about}")
        return 0
    _checks.output_dir("--out", args.out, files=(f"{args.name}.json", f"{args.name}.png"))
    result = run_experiment(args.name, args.out, quick=args.quick)
    print(json.dumps(result.get("headline") or result.get("final_loss", {}), indent=1))
    print(f"wrote {args.out}/{args.name}.json and {args.out}/{args.name}.png")
    return 0
