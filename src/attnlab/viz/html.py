"""One self-contained HTML page: head view (hover a token to see its links, choose layer and
heads), model view (layers × heads thumbnails, click to enlarge), heatmap view, and two texts
side by side for comparison. JavaScript and CSS are inlined from package data: the file works
offline, from disk, and inline in Jupyter.

Safety: the data travel as JSON inside ``<script type="application/json">`` with ``<``, ``>`` and
``&`` written as \\u escapes, so no token can close the script element; the page's JavaScript puts
tokens on screen with ``textContent`` only. Titles outside the script are ``html.escape``-d.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path

import torch

from attnlab.atomic import write_text
from attnlab.viz.payload import AttentionPayload

__all__ = ["Page", "render_page", "write_page"]


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode("ascii")


def _encode(payload: AttentionPayload, max_rows: int) -> dict:
    maps = payload.maps  # (L, H, P, P)
    peak = maps.amax(dim=(-1, -2), keepdim=True).clamp(min=1e-12)
    scaled = (maps / peak * 255).round().to(torch.uint8)  # each map on its own 0..255 scale
    weights = (payload.top_weights.clamp(0, 1) * 255).round().to(torch.uint8)
    return {
        "text": payload.text,
        "tokens": list(payload.tokens),
        "layer_names": [f"{i}: {name}" for i, name in enumerate(payload.layers)],
        "n_layers": payload.n_layers,
        "n_heads": payload.n_heads,
        "cells": maps.shape[-1],
        "pool": payload.pool,
        "k": payload.top_indices.shape[-1],
        "max_rows": max_rows,
        "maps": _b64(scaled),
        "top_indices": _b64(payload.top_indices.to(torch.int16).view(torch.uint8)),
        "top_weights": _b64(weights),
    }


def _safe_json(data: object) -> str:
    text = json.dumps(data, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    payload: AttentionPayload, compare: AttentionPayload | None = None, *,
    title: str = "attnlab: attention", max_rows: int = 200,
) -> str:  # fmt: skip
    """The page as a string. ``compare`` shows a second text side by side (same model shape)."""
    texts = [payload] + ([compare] if compare is not None else [])
    if compare is not None and (compare.n_layers, compare.n_heads) != (
        payload.n_layers, payload.n_heads
    ):  # fmt: skip
        raise ValueError(
            "compared texts must come from models of the same shape: "
            f"{payload.n_layers}×{payload.n_heads} vs {compare.n_layers}×{compare.n_heads}"
        )
    assets = resources.files("attnlab.viz") / "assets"
    css = (assets / "attention.css").read_text(encoding="utf-8")
    js = (assets / "attention.js").read_text(encoding="utf-8")
    data = _safe_json({"texts": [_encode(t, max_rows) for t in texts]})
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<div id='controls' class='controls'></div><div id='panels' class='panels'></div>"
        f"<script type='application/json' id='attnlab-data'>{data}</script>"
        f"<script>{js}</script></body></html>\n"
    )


def write_page(
    payload: AttentionPayload, path: str | Path, *, compare: AttentionPayload | None = None,
    title: str = "attnlab: attention", max_rows: int = 200,
) -> Path:  # fmt: skip
    """Write the page atomically (temporary file in the same folder, then rename). The output
    path comes after the data, as in every figure function."""
    return write_text(path, render_page(payload, compare, title=title, max_rows=max_rows))


class Page:
    """The interactive page as an object: renders inline in Jupyter (``_repr_html_``)."""

    def __init__(
        self, payload: AttentionPayload, compare: AttentionPayload | None = None, *,
        title: str = "attnlab: attention", max_rows: int = 200,
    ) -> None:  # fmt: skip
        self.payload, self.compare = payload, compare
        self.title, self.max_rows = title, max_rows

    def _render(self) -> str:
        return render_page(self.payload, self.compare, title=self.title, max_rows=self.max_rows)

    def _repr_html_(self) -> str:
        page = self._render()
        # An iframe keeps the page's script and styles apart from the notebook's.
        return (
            f'<iframe srcdoc="{html.escape(page, quote=True)}" '
            "style='width:100%;height:640px;border:0'></iframe>"
        )

    def save(self, path: str | Path) -> Path:
        return write_text(path, self._render())
