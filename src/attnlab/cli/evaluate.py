"""`attnlab evaluate`: BLEU of a translation checkpoint, and its cross-attention alignment."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks
from attnlab.train.translation_eval import alignment_figure, bleu


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="BLEU (sacrebleu) of a translation checkpoint on held-out verses; alignment picture",
        description="Greedy-translate the first --n held-out verses of the checkpoint's own "
        "validation split and print corpus BLEU (sacrebleu) with examples. With --align TEXT "
        "-o FIG.png, also draw the last decoder layer's cross-attention for TEXT.",
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--n", type=int, default=200, help="held-out verses to translate")
    p.add_argument("--align", help="an English sentence to draw the alignment of")
    p.add_argument("-o", "--out", help="alignment picture, .png or .svg (default alignment.png)")
    p.set_defaults(func=run)


FIGURES = (".png", ".svg")


def run(args: argparse.Namespace) -> int:
    _checks.input_file("--checkpoint", args.checkpoint, what="checkpoint")
    _checks.number("--n", args.n, at_least=1)
    _checks.text("--align", args.align)
    if args.out is not None and args.align is None:
        raise ValueError("-o names the alignment picture: it needs --align TEXT")
    out = args.out or "alignment.png"
    if args.align is not None:
        _checks.output_file("-o", out, suffixes=FIGURES)
    score = bleu(args.checkpoint, n=args.n)
    print(f"BLEU {score.bleu:.2f} on {score.n} held-out verses (sacrebleu, greedy decoding)")
    for en, es, out_text in score.examples:
        print(f"  EN  {en}\n  REF {es}\n  OUT {out_text}\n")
    if args.align is not None:
        translation, path = alignment_figure(args.checkpoint, args.align, out)
        print(f"{args.align!r} → {translation!r}; cross-attention drawn in {path}")
    return 0
