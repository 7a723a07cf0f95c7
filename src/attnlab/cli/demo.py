"""`attnlab demo`: the notes' flagship example on the real pretrained MiniLM.

"The animal didn't cross the street because it was tired" vs "...because it was wide": which
heads make "it" weigh "animal" over "street", in both sentences; then the shape trace of the
notes' worked example (D=128 split into 4 heads of 32)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from attnlab.inspection.antecedents import token_attention
from attnlab.inspection.pretrained import MINILM, load_minilm
from attnlab.nn.attention import MultiHeadAttention
from attnlab.trace import trace_shapes

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


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    print(f"loading {MINILM} (offline)…", flush=True)
    model, tokenizer = load_minilm("eager")  # eager: Hugging Face returns weights only there
    record = []
    for text in SENTENCES:
        result = token_attention(model, tokenizer, text, "it", ("animal", "street"))
        print(f'\n"{text}"\nheads where "it" weighs "animal" most over "street":')
        print(f"  {'layer':>5} {'head':>4} {'→animal':>8} {'→street':>8}")
        for layer, head, w_a, w_s in result.top_heads("animal", "street", args.top):
            print(f"  {layer:>5} {head:>4} {w_a:>8.3f} {w_s:>8.3f}")
        favour = int((result.weights[..., 0] > result.weights[..., 1]).sum())
        total = result.weights.shape[0] * result.weights.shape[1]
        print(f'  {favour} of {total} heads weigh "animal" over "street"')
        record.append(
            {
                "text": text,
                "tokens": list(result.tokens),
                "weights_it_to_animal_street": result.weights.tolist(),
            }
        )  # [L][H][2]
    path = _write_json(Path(args.out) / "it_attention.json", record)
    print(f"\nper-head weights written to {path}")
    print("\nshape trace of the notes' worked example (D=128, 4 heads):")
    with torch.no_grad(), trace_shapes():
        MultiHeadAttention(128, 4).eval()(torch.randn(1, 10, 128))
    print(f"\ndone in {time.perf_counter() - start:.1f} s")
    return 0


def _write_json(path: Path, data: object) -> Path:
    """Write atomically: a temporary file in the same folder, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path
