"""`attnlab inspect`: which words a token attends to, per layer and head, on a real model."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks, _model
from attnlab.inspection.report import inspect
from attnlab.measures.tables import MEASURES, measure_table
from attnlab.viz.tokens import shown, written


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="what one token attends to, per layer and head (real MiniLM or --model, offline)",
        description=(
            "Run TEXT through the real pretrained all-MiniLM-L6-v2 (offline, its default SDPA "
            "attention) or --model (a local model folder or a training run), capture exact "
            "attention, and print for --token the heads and keys it weighs most. With --key, rank "
            "heads by the weight on that word instead. Encoder–decoder models: TEXT is the source, "
            "--target the decoder's side; a target token shows its decoder and cross-attention "
            "layers."
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
    _model.add_model(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _checks.text("TEXT", args.text)
    for flag in ("--token", "--key"):  # a char model's space or newline is a token too
        _checks.text(flag, getattr(args, flag[2:]), blank=True)
    _checks.number("--top", args.top, at_least=1)
    if args.measure is not None and args.key is not None:
        raise ValueError("--key and --measure rank different things: give one of them")
    run = _model.check(args)
    if run is not None:  # a training run: its alphabet and positions, before the weights load
        run.check([("TEXT", args.text)], target=args.target, truncate=args.truncate)
    model, tokenizer = _model.load(args)
    report = inspect(args.text, model=model, tokenizer=tokenizer, target=args.target,
                     truncate=args.truncate)  # fmt: skip

    def listed(tokens: list[str]) -> str:  # readable: visible white space, decoded bytes
        return " ".join(shown(t, byte_level=report.byte_level) for t in tokens)

    # --token and --key as the tokenizer writes them, or as printed (↵, ␣, decoded bytes).
    every = report.tokens + (report.target_tokens or [])
    for name in ("token", "key"):
        if getattr(args, name) is not None:
            setattr(args, name, written(getattr(args, name), every, byte_level=report.byte_level))

    print(f"{report.model_name}: {len(report.tokens)} tokens: {listed(report.tokens)}")
    if report.target_tokens is not None:
        print(f"target: {len(report.target_tokens)} tokens: {listed(report.target_tokens)}")
    if args.measure is not None:
        print(measure_table(report, args.token, args.measure, top=args.top))
        return 0
    if args.key is None:
        print(report.attends(args.token, top=args.top))
        return 0
    print(f'heads where "{args.token}" weighs "{args.key}" most, per layer:')
    print(f"  {'layer':>10}  {'head':>4}  {'weight':>6}")
    table = report.heads_weighing(args.token, args.key, top=args.top)
    for layer, heads in zip(report.between(args.token, args.key), table, strict=True):
        label = report.label(layer).removeprefix("layer")  # "  3", or "decoder  1"
        for head, weight in heads:
            print(f"  {label:>10}  {head:>4}  {weight:>6.3f}")
    return 0
