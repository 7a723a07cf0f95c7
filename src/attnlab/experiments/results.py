"""Writing experiment outputs atomically: JSON numbers and figures."""

from __future__ import annotations

from pathlib import Path

from attnlab.atomic import atomic_write, write_json

__all__ = ["save_figure", "write_json"]


def save_figure(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return path
