"""What the server computes: a capture of one or two texts (the result page) and exact tiles
of its maps.

A :class:`Result` keeps each text's :class:`~attnlab.inspection.report.Report` — its lazy,
exact :class:`~attnlab.inspection.attention_map.AttentionMap` per layer — beside the page made
from it. The page of a long text carries pooled maps; as the user zooms in, the page asks for
:func:`tile`: the exact weights of a block of query and key tokens, recomputed from the lazy map
(no N×N matrix is ever held)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import torch

from attnlab.inspection.report import Report, inspect
from attnlab.serve.models import ServedModel
from attnlab.viz.html import render_page
from attnlab.viz.payload import AttentionPayload

__all__ = ["TILE_MAX", "Request", "Result", "compute", "tile"]

TILE_MAX = 512  # query and key tokens per side of one tile


@dataclass(frozen=True)
class Request:
    model: int  # index into the server's model list
    text: str
    compare: str | None = None  # a second text, side by side
    target: str | None = None  # an encoder–decoder's decoder side (both texts)

    @property
    def key(self) -> str:
        """The same request always gets the same key (and hits the cache)."""
        fields = [self.model, self.text, self.compare, self.target]
        return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()[:24]

    @property
    def texts(self) -> list[str]:
        return [self.text] + ([self.compare] if self.compare is not None else [])


@dataclass
class Result:
    key: str
    model: str
    reports: list[Report]  # one per text
    panels: list[tuple[int, AttentionPayload]]  # as the page numbers them: (report, payload)
    page: bytes  # the rendered page, UTF-8
    nbytes: int = 0

    def __post_init__(self) -> None:
        maps = sum(m.nbytes for r in self.reports for m in r.maps.values())
        payloads = sum(_payload_bytes(p) for _, p in self.panels)
        self.nbytes = maps + payloads + len(self.page)


def compute(request: Request, served: ServedModel, *, tiles_url: str,
            progress: Callable[[str], None] = lambda _: None) -> Result:  # fmt: skip
    """Capture every text of ``request`` on ``served`` and render the result page, whose heatmaps
    fetch exact tiles from ``tiles_url``."""
    reports, texts = [], request.texts
    for n, text in enumerate(texts, 1):
        which = f" (text {n} of {len(texts)})" if len(texts) > 1 else ""
        progress(f"running {served.name}{which}")
        reports.append(inspect(text, model=served.model, tokenizer=served.tokenizer,
                               target=request.target))  # fmt: skip
    progress("pooling the maps and finding each token's strongest links")
    per_text = [AttentionPayload.panels(r) for r in reports]
    progress("writing the page")
    page = render_page(
        per_text[0],
        per_text[1] if len(per_text) > 1 else None,
        title=f"attnlab serve: attention on {served.name}",
        tiles=tiles_url,
    )
    panels = [(i, p) for i, panels in enumerate(per_text) for p in panels]
    return Result(request.key, served.name, reports, panels, page.encode("utf-8"))


def tile(result: Result, text: int, layer: int, head: int, queries: tuple[int, int],
         keys: tuple[int, int]) -> torch.Tensor:  # fmt: skip
    """Exact weights of panel ``text`` (as the page numbers its panels), ``layer``, ``head``, for
    query tokens [q0, q1) and key tokens [k0, k1): (q1 − q0, k1 − k0) float32. Every argument is
    checked; a ValueError names the one that is out of range."""
    if not 0 <= text < len(result.panels):
        raise ValueError(f"text must lie in [0, {len(result.panels)}); got {text}")
    report_index, payload = result.panels[text]
    if not 0 <= layer < payload.n_layers:
        raise ValueError(f"layer must lie in [0, {payload.n_layers}); got {layer}")
    if not 0 <= head < payload.n_heads:
        raise ValueError(f"head must lie in [0, {payload.n_heads}); got {head}")
    for name, (a, b), n in (("queries", queries, len(payload.tokens)),
                            ("keys", keys, len(payload.keys))):  # fmt: skip
        if not 0 <= a < b <= n:
            raise ValueError(f"{name} must be a range a < b within [0, {n}]; got [{a}, {b})")
        if b - a > TILE_MAX:
            raise ValueError(f"{name}: a tile spans at most {TILE_MAX} tokens; got {b - a}")
    amap = result.reports[report_index].maps[payload.layers[layer]]
    with torch.no_grad():
        rows = amap.rows(queries[0], queries[1], heads=head)  # (1, 1, rows, Lk)
    return rows[0, 0, :, keys[0] : keys[1]].float().contiguous()


def _payload_bytes(p: AttentionPayload) -> int:
    tensors = [p.maps, p.top_indices, p.top_weights]
    own = sum(t.numel() * t.element_size() for t in tensors)
    return own + sum(_payload_bytes(m) for m in p.measures)
