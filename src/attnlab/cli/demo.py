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

from attnlab.atomic import write_json
from attnlab.inspection.pretrained import MINILM
from attnlab.inspection.report import inspect
from attnlab.nn.attention import MultiHeadAttention
from attnlab.trace import trace_shapes
from attnlab.viz import figures
from attnlab.viz.html import write_page
from attnlab.viz.payload import AttentionPayload

SENTENCES = (
    "The animal didn't cross the street because it was tired",
    "The animal didn't cross the street because it was wide",
)


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


def _table(report, top: int) -> list[dict]:
    animal = report.weight_between("it", "animal")  # (L, H)
    street = report.weight_between("it", "street")
    print(f'\n"{report.text}"\nheads where "it" weighs "animal" most over "street":')
    print(f"  {'layer':>5} {'head':>4} {'→animal':>8} {'→street':>8}")
    rows = []
    for h in report.heads_favouring("it", "animal", "street", top):
        print(f"  {h.layer:>5} {h.head:>4} {h.favour:>8.3f} {h.against:>8.3f}")
        rows.append({"layer": h.layer, "head": h.head, "animal": h.favour, "street": h.against})
    favour = int((animal > street).sum())
    print(f'  {favour} of {animal.numel()} heads weigh "animal" over "street"')
    return rows


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = Path(args.out)
    print(f"running {MINILM} (offline) with exact attention capture…", flush=True)
    reports = [inspect(text) for text in SENTENCES]
    record = [
        {
            "text": r.text,
            "tokens": r.tokens,
            "top_heads": _table(r, args.top),
            "it_to_animal": r.weight_between("it", "animal").tolist(),  # [layer][head]
            "it_to_street": r.weight_between("it", "street").tolist(),
        }
        for r in reports
    ]
    tired, wide = (AttentionPayload.from_report(r) for r in reports)
    best = record[0]["top_heads"][0]
    # Link views: the heads of that layer among the top ones, so the strong links stay legible.
    heads = [row["head"] for row in record[0]["top_heads"] if row["layer"] == best["layer"]]
    written = [
        write_page(out / "attention.html", tired, wide,
                   title="attnlab demo: what does “it” attend to? (all-MiniLM-L6-v2)"),
        figures.heatmap(tired, best["layer"], best["head"], out / "heatmap.png"),
        figures.head_grid(tired, best["layer"], out / "heads.png"),
        figures.model_grid(tired, out / "model.png"),
        figures.token_links(tired, best["layer"], "it", out / "links_tired.png", heads=heads),
        figures.token_links(wide, best["layer"], "it", out / "links_wide.png", heads=heads),
        figures.qkv_flow(out / "qkv_flow.png"),
        write_json(out / "it_attention.json", record),
    ]  # fmt: skip
    print("\nwritten:")
    for path in written:
        print(f"  {path}")
    print("\nshape trace of the notes' worked example (D=128, 4 heads):")
    with torch.no_grad(), trace_shapes():
        MultiHeadAttention(128, 4).eval()(torch.randn(1, 10, 128))
    print(
        f"\ndone in {time.perf_counter() - start:.1f} s; open {out / 'attention.html'} in a browser"
    )
    return 0
