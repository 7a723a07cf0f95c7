"""`attnlab show`: pictures of attention (interactive page, PNG, SVG) on the real MiniLM."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks, _model
from attnlab.inspection.pretrained import model_name
from attnlab.viz.render import FORMATS, show


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show",
        help="draw attention: interactive HTML page, or PNG/SVG figures (real MiniLM, offline)",
        description=(
            "Run TEXT through the real pretrained all-MiniLM-L6-v2 (or --model: a local model "
            "folder or a training run) and draw its attention. Encoder–decoder models (TEXT the "
            "source, --target the decoder's side) get encoder, decoder and cross-attention panels, "
            "or one figure of each (NAME-encoder.png, NAME-decoder.png, NAME-cross.png). "
            "--generate N continues TEXT by N tokens (greedy, KV cache) and draws prompt + "
            "generated tokens. -o page.html writes a self-contained interactive page (head, model "
            "and heatmap views; --compare adds a second text side by side). -o fig.png/.svg draws: "
            "with --token, the links from that token (layer --layer, default 0); with --layer and "
            "--head, that head's heatmap; with --layer, all its heads; otherwise every layer × "
            "head. --layer, --head and --token are checked against the model and text for every "
            "output, the page included."
        ),
    )
    p.add_argument("text", help="the text to show")
    p.add_argument("-o", "--out", required=True, help="output file: .html, .png or .svg")
    p.add_argument("--compare", help="a second text, shown side by side (HTML only)")
    p.add_argument("--layer", type=int, help="layer index (0-based)")
    p.add_argument("--head", type=int, help="head index (0-based)")
    p.add_argument("--token", help="draw the links from this token")
    p.add_argument("--truncate", action="store_true", help="cut texts longer than the model")
    p.add_argument(
        "--measure", choices=("rollout", "value-norms", "grad-attention", "all"),
        help="draw a measure beyond raw weights: attention rollout (all layers), value-weighted "
        "norms, or gradient × attention (of the norm of --token's final hidden state, default "
        "the last token); a page keeps raw weights in its selector and opens on the measure "
        "('all': every measure, page only)",
    )  # fmt: skip
    _model.add_model(p)
    p.add_argument("--checkpoint", help=argparse.SUPPRESS)  # the old name of --model
    p.add_argument("--generate", type=int, metavar="N",
                   help="generate N tokens after TEXT and draw what each attended to")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for flag in ("TEXT", "--compare"):
        _checks.text(flag, getattr(args, flag.lstrip("-").lower()))
    _checks.text("--token", args.token, blank=True)  # a char model's space or newline too
    for flag in ("--layer", "--head"):
        _checks.number(flag, getattr(args, flag[2:]), at_least=0)
    _checks.number("--generate", args.generate, at_least=1)
    _checks.output_file("-o", args.out, suffixes=FORMATS)
    if args.checkpoint is not None:  # the old name: errors name what was typed
        if args.model is not None:
            raise ValueError("--checkpoint is the old name of --model; give one of them")
        args.model = args.checkpoint
    run = _model.check(args, flag="--checkpoint" if args.checkpoint is not None else "--model")
    if args.generate is not None and args.target is not None:
        raise ValueError("--generate makes the decoder's side; leave out --target")
    if run is not None:  # a training run: its alphabet and positions, before the weights load
        new = None if args.generate is None else ("--generate", args.generate)
        run.check([("TEXT", args.text), ("--compare", args.compare)], target=args.target,
                  new=new, truncate=args.truncate)  # fmt: skip
    name = "all-MiniLM-L6-v2" if args.model is None else model_name(args.model)
    print(f"running {name} and capturing attention…", flush=True)
    paths = show(
        args.text, args.out, compare=args.compare, layer=args.layer, head=args.head,
        token=args.token, truncate=args.truncate, model=args.model, target=args.target,
        generate=args.generate, measure=args.measure,
    )  # fmt: skip
    for path in paths:
        print(f"wrote {path}")
    return 0
