"""`attnlab inspect`: which words a token attends to, per layer and head, on a real model."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks
from attnlab.inspection.report import inspect
from attnlab.measures.tables import MEASURES, measure_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="what one token attends to, per layer and head (real MiniLM, offline)",
        description=(
            "Run TEXT through the real pretrained all-MiniLM-L6-v2 (offline, its default SDPA "
            "attention), capture exact attention, and print for --token the heads and keys it "
            "weighs most. With --key, rank heads by the weight on that word instead."
        ),
    )
    p.add_argument("text", help="the sentence to inspect")
    p.add_argument("--token", required=True, help="query token, as the tokenizer writes it")
    p.add_argument("--key", help="rank heads by the weight the token puts on this word")
    p.add_argument(
        "--measure", choices=MEASURES,
        help="rank the token's sources by a measure beyond raw weights: rollout (attention "
        "flow through the layers and the residual), value-norms (size of what moves, "
        "‖α·f(x)‖), grad-attention (A ⊙ ∂output/∂A), head-effects (output change per ablated "
        "head); output = the norm of the token's final hidden state",
    )  # fmt: skip
    p.add_argument("--top", type=int, default=3, help="keys (or heads with --key) per layer")
    p.add_argument("--truncate", action="store_true", help="cut texts longer than the model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for flag in ("TEXT", "--token", "--key"):
        _checks.text(flag, getattr(args, flag.lstrip("-").lower()))
    _checks.number("--top", args.top, at_least=1)
    if args.measure is not None and args.key is not None:
        raise ValueError("--key and --measure rank different things: give one of them")
    report = inspect(args.text, truncate=args.truncate)
    print(f"{report.model_name}: {len(report.tokens)} tokens: {' '.join(report.tokens)}")
    if args.measure is not None:
        print(measure_table(report, args.token, args.measure, top=args.top))
        return 0
    if args.key is None:
        print(report.attends(args.token, top=args.top))
        return 0
    print(f'heads where "{args.token}" weighs "{args.key}" most, per layer:')
    print(f"  {'layer':>5}  {'head':>4}  {'weight':>6}")
    for layer, heads in enumerate(report.heads_weighing(args.token, args.key, top=args.top)):
        for head, weight in heads:
            print(f"  {layer:>5}  {head:>4}  {weight:>6.3f}")
    return 0
