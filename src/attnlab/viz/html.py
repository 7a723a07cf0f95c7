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
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch

from attnlab.atomic import write_text
from attnlab.viz.payload import AttentionPayload
from attnlab.viz.tokens import shown

__all__ = ["Page", "render_page", "write_page"]

Panels = AttentionPayload | Sequence[AttentionPayload]  # one panel, or several side by side


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode("ascii")


def _quantized(x: torch.Tensor) -> tuple[str, str]:
    """``x`` (L, H, ...) as int16 codes of x / scale, scale = max |x| of each (layer, head)
    (so values read back within scale / 32767 of the exact ones, 3e-5 for weights), and the
    float32 scales, both base64."""
    scale = x.flatten(2).abs().amax(-1).clamp(min=1e-30)  # (L, H)
    codes = (x / scale[:, :, None, None] * 32767).round().to(torch.int16)
    return _b64(codes.view(torch.uint8)), _b64(scale.float())


def _values(payload: AttentionPayload) -> dict:
    """One measure's values for the page: maps (L, H, P, P), each token's K strongest links."""
    from attnlab.viz.measures import MEASURES

    maps, map_scale = _quantized(payload.maps)
    top, top_scale = _quantized(payload.top_weights)
    return {
        "label": MEASURES[payload.measure][0],
        "meaning": payload.meaning or MEASURES[payload.measure][1],
        "relative": payload.measure != "attention",  # links scaled to the map's peak
        "signed": bool((payload.maps < 0).any() or (payload.top_weights < 0).any()),
        "layer_names": [f"{i}: {name}" for i, name in enumerate(payload.layers)],
        "n_layers": payload.n_layers,
        "n_heads": payload.n_heads,
        "rows": payload.maps.shape[-2],
        "cells": payload.maps.shape[-1],
        "k": payload.top_indices.shape[-1],
        "maps": maps,
        "map_scale": map_scale,
        "top_indices": _b64(payload.top_indices.to(torch.int16).view(torch.uint8)),
        "top_values": top,
        "top_scale": top_scale,
    }


def _encode(payload: AttentionPayload) -> dict:
    bl = payload.byte_level
    return {
        "text": payload.text,
        "tokens": [shown(t, byte_level=bl) for t in payload.tokens],  # attnlab.viz.tokens
        "key_tokens": [shown(t, byte_level=bl) for t in payload.keys],  # cross-attention's source
        "key_pool": payload.cell_keys,
        "role": payload.role,  # self, or an encoder–decoder's encoder, decoder or cross
        "n_layers": payload.n_layers,
        "n_heads": payload.n_heads,
        "pool": payload.pool,
        "values": {p.measure: _values(p) for p in (payload, *payload.measures)},
        "steps": [
            {"row": row, "token": shown(token, byte_level=bl)} for row, token in payload.steps
        ],
    }


def _safe_json(data: object) -> str:
    text = json.dumps(data, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    payload: Panels, compare: Panels | None = None, *, title: str = "attnlab: attention",
    start: dict | None = None, tiles: str | None = None,
) -> str:  # fmt: skip
    """The page as a string. ``compare`` shows a second text side by side (same model shape).
    Either may be several panels (an encoder–decoder's encoder, decoder and cross-attention,
    from :meth:`AttentionPayload.panels`), shown side by side with one layer and head choice.
    ``start``: the view the page opens on, e.g. ``{"view": "head", "layer": 5, "head": 11,
    "token": 10, "measure": "rollout"}`` (a link's ``#view=...`` fragment overrides it).
    ``tiles``: the URL of a server's exact tiles (`attnlab serve`): zoomed heatmaps of long texts
    fetch exact weights from it instead of showing block means."""
    first = [payload] if isinstance(payload, AttentionPayload) else list(payload)
    second = [] if compare is None else [compare] if isinstance(compare, AttentionPayload) \
        else list(compare)  # fmt: skip
    for a, b in zip(first, second, strict=False):
        if (a.n_layers, a.n_heads) != (b.n_layers, b.n_heads):
            raise ValueError(
                "compared texts must come from models of the same shape: "
                f"{a.n_layers}×{a.n_heads} vs {b.n_layers}×{b.n_heads}"
            )
    texts = first + second
    names = [[m.measure for m in (t, *t.measures)] for t in texts]
    if any(n != names[0] for n in names):
        raise ValueError(f"compared texts must carry the same measures: {names[0]} vs {names[-1]}")
    assets = resources.files("attnlab.viz") / "assets"
    css = (assets / "attention.css").read_text(encoding="utf-8")
    js = (assets / "attention.js").read_text(encoding="utf-8")
    groups = [0] * len(first) + [1] * len(second)  # which text each panel shows
    encoded = [{**_encode(t), "group": g} for t, g in zip(texts, groups, strict=True)]
    data = {"texts": encoded, "start": start or {}}
    if tiles is not None:
        data["tiles"] = tiles
    data = _safe_json(data)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<div id='controls' class='controls'></div><div id='meaning' class='meaning'></div>"
        "<div id='panels' class='panels'></div><div id='tooltip' class='tooltip' hidden></div>"
        f"<script type='application/json' id='attnlab-data'>{data}</script>"
        f"<script>{js}</script></body></html>\n"
    )


def write_page(
    payload: Panels, path: str | Path, *, compare: Panels | None = None,
    title: str = "attnlab: attention", start: dict | None = None,
) -> Path:  # fmt: skip
    """Write the page atomically (temporary file in the same folder, then rename). The output
    path comes after the data, as in every figure function."""
    return write_text(path, render_page(payload, compare, title=title, start=start))


def inline(page: str, height: int = 640) -> str:
    """A whole page for Jupyter's ``_repr_html_``: an iframe keeps the page's script and styles
    apart from the notebook's."""
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" '
        f"style='width:100%;height:{height}px;border:0'></iframe>"
    )


class Page:
    """The interactive page as an object: renders inline in Jupyter (``_repr_html_``)."""

    def __init__(
        self, payload: Panels, compare: Panels | None = None, *,
        title: str = "attnlab: attention", start: dict | None = None,
    ) -> None:  # fmt: skip
        self.payload, self.compare = payload, compare
        self.title, self.start = title, start

    def _render(self) -> str:
        return render_page(self.payload, self.compare, title=self.title, start=self.start)

    def _repr_html_(self) -> str:
        return inline(self._render())

    def save(self, path: str | Path) -> Path:
        return write_text(path, self._render())
