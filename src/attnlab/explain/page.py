"""The explain page: one self-contained HTML file (JavaScript and CSS inlined from package data,
no network), built the way :mod:`attnlab.viz.html` builds the attention page.

Safety: the data travel as JSON inside ``<script type="application/json">`` with ``<``, ``>``
and ``&`` written as \\u escapes, so no token can close the script element; ``explain.js`` puts
every text on screen with ``textContent`` only. The title is ``html.escape``-d.

Tensors travel as base64 float32 (exact: the page shows the walk's own float32 numbers) with
their shape: ``{"shape": [H, T, T], "data": "..."}``.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import TYPE_CHECKING

from torch import Tensor

from attnlab.explain.pitfalls import PITFALLS
from attnlab.viz.html import _b64, _safe_json

if TYPE_CHECKING:
    from attnlab.explain.build import Explanation

__all__ = ["page_data", "render_explanation"]


def _tensor(t: Tensor) -> dict:
    return {"shape": list(t.shape), "data": _b64(t.detach().float())}


def page_data(e: Explanation) -> dict:
    """What the page's script reads (``#attnlab-explain-data``)."""
    from attnlab.explain.build import TOLERANCE

    a = e.anatomy
    return {
        "meta": {
            "title": e.title,
            "model": e.model_name,
            "description": a.description,
            "text": e.text,
            "tokens": e.tokens,
            "ids": e.ids,
            "layer": e.layer,
            "kind": a.kind,
            "n_layers": a.n_layers,
            "n_heads": a.n_heads,
            "d_model": a.d_model,
            "d_head": a.d_head,
            "d_ff": a.d_ff,
            "norm_first": a.norm_first,
            "causal": a.causal,
            "positional": a.positional,
            "position_scale": a.position_scale,
            "max_difference": e.max_difference,
            "tolerance": TOLERANCE,
        },
        "start": e.start,
        "own": e.model_variant.key,
        "fixed": {name: _tensor(t) for name, t in e.fixed.items()},
        "variants": {
            key: {name: _tensor(t) for name, t in steps.items()}
            for key, steps in e.variants.items()
        },
        "pitfalls": PITFALLS,
        "shapes": e.shapes,
    }


def render_explanation(e: Explanation) -> str:
    assets = resources.files("attnlab.viz") / "assets"
    css = (assets / "explain.css").read_text(encoding="utf-8")
    js = (assets / "explain.js").read_text(encoding="utf-8")
    data = _safe_json(page_data(e))
    title = html.escape(e.title)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><style>{css}</style></head><body>"
        f"<header><h1>{title}</h1><p id='about' class='about'></p></header>"
        "<div id='pitfall' class='pitfall' hidden></div>"
        "<div id='controls' class='controls'></div>"
        "<div id='cards' class='cards'></div>"
        f"<script type='application/json' id='attnlab-explain-data'>{data}</script>"
        f"<script>{js}</script></body></html>\n"
    )
