"""`attnlab demo`: the notes' flagship example on the real pretrained MiniLM.

"The animal didn't cross the street because it was tired" vs "...because it was wide": which
heads make "it" weigh "animal" over "street" in each sentence, an interactive page with both
sentences side by side, static figures, and the shape trace of the notes' worked example
(D=128 split into 4 heads of 32)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from attnlab.cli import _checks
from attnlab.inspection.pretrained import MINILM
from attnlab.nn.attention import MultiHeadAttention
from attnlab.trace import trace_shapes
from attnlab.viz.render import demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the flagship example on the real MiniLM: what does 'it' attend to?",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="demo-output", help="folder for outputs (default demo-output)")
    p.add_argument("--top", type=int, default=5, help="heads to list per sentence (default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _checks.number("--top", args.top, at_least=1)
    _checks.output_dir("--out", args.out)
    start = time.perf_counter()
    print(f"running {MINILM} (offline) with exact attention capture…", flush=True)
    result = demo(args.out, top=args.top)
    for report, heads in zip(result.reports, result.top_heads, strict=True):
        print(f'\n"{report.text}"\nheads where "it" weighs "animal" most over "street":')
        print(f"  {'layer':>5} {'head':>4} {'→animal':>8} {'→street':>8}")
        for h in heads:
            print(f"  {h.layer:>5} {h.head:>4} {h.favour:>8.3f} {h.against:>8.3f}")
        animal, street = (report.weight_between("it", w) for w in ("animal", "street"))
        print(f'  {int((animal > street).sum())} of {animal.numel()} heads weigh "animal" over '
              '"street"')  # fmt: skip
    print("\nwritten:")
    for path in result.written:
        print(f"  {path}")
    print("\nshape trace of the notes' worked example (D=128, 4 heads):")
    with torch.no_grad(), trace_shapes():
        MultiHeadAttention(128, 4).eval()(torch.randn(1, 10, 128))
    page = Path(args.out) / "attention.html"
    print(f"\ndone in {time.perf_counter() - start:.1f} s; open {page} in a browser")
    return 0
