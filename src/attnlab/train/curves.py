"""Loss curves from a run's ``metrics.jsonl``: training loss (every logged step) and validation
loss (at each evaluation), against steps and wall time."""

from __future__ import annotations

import json
from pathlib import Path

from attnlab.atomic import atomic_write

__all__ = ["plot_curves", "read_metrics"]


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(metrics_path: str | Path, out: str | Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    if not records:
        raise ValueError(f"{metrics_path} has no metrics yet")
    train = [(r["step"], r["loss"]) for r in records]
    val = [(r["step"], r["val_loss"], r["elapsed_s"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*train, strict=True), label="training loss", alpha=0.7)
    if val:
        steps, losses, _ = zip(*val, strict=True)
        ax.plot(steps, losses, "o-", label="validation loss")
        for s, v, t in val[-1:]:
            ax.annotate(f"{v:.3f} at {t / 60:.1f} min", (s, v), textcoords="offset points",
                        xytext=(-60, 12))  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return Path(out)
