"""From text to pictures in one call: what `attnlab show` and `attnlab demo` use."""

from __future__ import annotations

from pathlib import Path

from attnlab.inspection.pretrained import load_checkpoint
from attnlab.inspection.report import inspect
from attnlab.viz import figures
from attnlab.viz.html import write_page
from attnlab.viz.payload import AttentionPayload

__all__ = ["show"]

FORMATS = (".html", ".png", ".svg")


def show(
    text: str, out: str | Path, *, compare: str | None = None, layer: int | None = None,
    head: int | None = None, token: str | None = None, truncate: bool = False,
    checkpoint: str | Path | None = None,
) -> list[Path]:  # fmt: skip
    """Inspect ``text`` on the default real model (or an attnlab ``checkpoint`` folder with its
    tokenizer.json) and write pictures to ``out``.

    ``.html``: the interactive page (with ``compare`` side by side). ``.png`` / ``.svg``: with
    ``token``, the token-link view of ``layer`` (default 0); with ``layer`` and ``head``, that
    head's heatmap; with only ``layer``, the grid of its heads; else all layers × heads."""
    out = Path(out)
    if out.suffix not in FORMATS:
        raise ValueError(f"output must end in one of {FORMATS}; got {out.name!r}")
    model, tokenizer = load_checkpoint(checkpoint) if checkpoint is not None else (None, None)
    name = f"attnlab checkpoint {Path(checkpoint).name}" if checkpoint else "all-MiniLM-L6-v2"

    def payload_of(t: str) -> AttentionPayload:
        return AttentionPayload.from_report(inspect(t, model, tokenizer, truncate=truncate))

    payload = payload_of(text)
    if out.suffix == ".html":
        other = payload_of(compare) if compare is not None else None
        return [write_page(out, payload, other, title=f"attnlab: attention on {name}")]
    if compare is not None:
        raise ValueError("--compare needs an .html output (two texts side by side)")
    if token is not None:
        return [figures.token_links(payload, layer or 0, token, out)]
    if layer is not None and head is not None:
        return [figures.heatmap(payload, layer, head, out)]
    if layer is not None:
        return [figures.head_grid(payload, layer, out)]
    if head is not None:
        raise ValueError("--head needs --layer")
    return [figures.model_grid(payload, out)]
