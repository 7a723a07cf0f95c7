"""The figures of docs/training.md from the runs' metrics.jsonl logs.

    python docs/training_figures.py curve RUN.metrics.jsonl OUT.png [--old OLD.metrics.jsonl]
        [--ylim LOW HIGH]
    python docs/training_figures.py compare FLOAT32.metrics.jsonl BFLOAT16.metrics.jsonl OUT.png
        [--unit token]

``curve``: training and validation loss against minutes (and the previous recipe's validation
loss, dashed, with ``--old``). ``compare``: the validation and training loss of the same steps in
float32 and bfloat16, against steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _series(rows: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    kept = [r for r in rows if y in r and x in r]
    scale = 1 / 60 if x == "elapsed_s" else 1
    return [r[x] * scale for r in kept], [r[y] for r in kept]


def curve(run: str, out: str, old: str | None, ylim: tuple[float, float]) -> None:
    rows = read(run)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*_series(rows, "elapsed_s", "loss"), lw=0.8, alpha=0.6, label="training loss")
    ax.plot(*_series(rows, "elapsed_s", "val_loss"), "o-", label="validation loss")
    if old:
        ax.plot(*_series(read(old), "elapsed_s", "val_loss"), "s--", color="grey",
                label="validation loss, previous recipe")  # fmt: skip
    ax.set(xlabel="minutes (2 cores)", ylabel="nats per token", ylim=ylim)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def compare(f32: str, bf16: str, out: str, unit: str = "character") -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for path, name, colour in ((f32, "float32", "C0"), (bf16, "bfloat16", "C3")):
        rows = read(path)
        ax.plot(*_series(rows, "step", "loss"), lw=0.8, alpha=0.5, color=colour,
                label=f"{name} training")  # fmt: skip
        ax.plot(*_series(rows, "step", "val_loss"), "o-", color=colour,
                label=f"{name} validation")  # fmt: skip
    ax.set(xlabel="step", ylabel=f"nats / {unit}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    c = sub.add_parser("curve")
    c.add_argument("run")
    c.add_argument("out")
    c.add_argument("--old")
    c.add_argument("--ylim", type=float, nargs=2, default=(1.2, 3.0))
    m = sub.add_parser("compare")
    m.add_argument("float32")
    m.add_argument("bfloat16")
    m.add_argument("out")
    m.add_argument("--unit", default="character", help="what the loss is per: character, token")
    args = parser.parse_args()
    if args.kind == "curve":
        curve(args.run, args.out, args.old, tuple(args.ylim))
    else:
        compare(args.float32, args.bfloat16, args.out, args.unit)


if __name__ == "__main__":
    main()
