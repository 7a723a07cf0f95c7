"""The data every picture is drawn from: tokens and per-layer, per-head attention.

Short texts carry exact maps. Long texts carry maps average-pooled to at most ``max_cells``
rows and columns (streamed from :class:`AttentionMap`, never N×N in memory) plus, for every token
and head, its ``top_k`` strongest links (fewer past 2,048 tokens: at most :data:`LINK_BUDGET`
links per head, at least 2 per token), so pictures stay readable and files stay small.

A payload may also hold values other than raw weights (``measure``: rollout, value norms,
gradient × attention; see :mod:`attnlab.viz.measures`), built with :meth:`from_values`, and the
same text under other measures (``measures``, for the page's measure selector).

Queries and keys are the same tokens, except in cross-attention (an encoder–decoder's target
queries over its source keys): there ``key_tokens`` names the keys. :meth:`AttentionPayload.panels`
gives one payload per kind of layer of a report (encoder, decoder, cross-attention).

Dimension legend: L layers, H heads, T query tokens, S key tokens, P pooled size (≤ max_cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.inspection.capture import ROLES

__all__ = ["AttentionPayload"]


@dataclass(frozen=True)
class AttentionPayload:
    text: str
    tokens: tuple[str, ...]
    layers: tuple[str, ...]  # layer names, e.g. "encoder.layer.3.attention.self"
    maps: Tensor  # (L, H, P, Ps) float32: exact weights when P == T, else block means
    pool: int  # tokens per pooled cell (1 = exact maps)
    top_indices: Tensor  # (L, H, T, K) int64: each token's strongest keys
    top_weights: Tensor  # (L, H, T, K) float32: their weights
    measure: str = "attention"  # what the values are (a name of attnlab.viz.measures.MEASURES)
    meaning: str = ""  # one line on what the values mean (shown on the page)
    measures: tuple[AttentionPayload, ...] = ()  # the same text under other measures (the page)
    key_tokens: tuple[str, ...] | None = None  # the keys, where they differ from the queries
    key_pool: int | None = None  # keys per pooled cell, where they differ from the queries
    role: str = "self"  # the layers' role (attnlab.inspection.capture.ROLES)
    # After generation: (query row, token) per generated token, the row whose query predicted it
    # (the page's step slider replays them).
    steps: tuple[tuple[int, str], ...] = ()
    byte_level: bool = False  # tokens are byte-level BPE's: drawn decoded (attnlab.viz.tokens)

    def __post_init__(self) -> None:
        L, H, P, P2 = self.maps.shape
        T, S = len(self.tokens), len(self.keys)
        rows, cols = math.ceil(T / self.pool), math.ceil(S / self.cell_keys)
        if (rows, cols) != (P, P2):
            raise ValueError(
                f"maps must be (L, H, P, Ps) with P = ceil(T / pool) = {rows} and Ps = "
                f"ceil(S / key_pool) = {cols}; got {tuple(self.maps.shape)} for {T} queries and "
                f"{S} keys"
            )
        if len(self.layers) != L:
            raise ValueError(f"need one layer name per map: {L} maps, {len(self.layers)} names")
        if any(not 0 <= row < T for row, _ in self.steps):
            raise ValueError(f"steps must name query rows in [0, {T}); got {list(self.steps)}")
        if (
            self.top_indices.shape[:3] != (L, H, T)
            or self.top_weights.shape != self.top_indices.shape
        ):
            raise ValueError(
                f"top_indices/top_weights must be (L, H, T, K) = ({L}, {H}, {T}, K); got "
                f"{tuple(self.top_indices.shape)} and {tuple(self.top_weights.shape)}"
            )

    @property
    def keys(self) -> tuple[str, ...]:
        return self.tokens if self.key_tokens is None else self.key_tokens

    @property
    def cell_keys(self) -> int:
        """Keys per pooled cell (``pool`` unless the keys are pooled differently)."""
        return self.pool if self.key_pool is None else self.key_pool

    @property
    def n_layers(self) -> int:
        return self.maps.shape[0]

    @property
    def n_heads(self) -> int:
        return self.maps.shape[1]

    @property
    def exact(self) -> bool:
        return self.pool == 1 and self.cell_keys == 1

    def check(self, layer: int | None = None, head: int | None = None) -> None:
        if layer is not None and not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must lie in [0, {self.n_layers}); got {layer}")
        if head is not None and not 0 <= head < self.n_heads:
            raise ValueError(f"head must lie in [0, {self.n_heads}); got {head}")

    def token_index(self, token: str) -> int:
        if token not in self.tokens:
            shown = list(self.tokens[:40]) + (["…"] if len(self.tokens) > 40 else [])
            raise ValueError(f"token {token!r} is not in the text; its tokens are {shown}")
        return self.tokens.index(token)

    def links(self, layer: int, head: int, token: int) -> list[tuple[int, float]]:
        """(key index, weight) of one token's strongest links, strongest first."""
        pairs = zip(self.top_indices[layer, head, token].tolist(),
                    self.top_weights[layer, head, token].tolist(), strict=True)  # fmt: skip
        return [(j, w) for j, w in pairs if w > 0]

    @classmethod
    def from_report(
        cls, report, *, max_cells: int = 128, top_k: int = 8, role: str | None = None
    ) -> AttentionPayload:  # fmt: skip
        """From an :func:`attnlab.inspect` report (batch of one text): its layers of ``role``
        (default: all, when they share their tokens; see :meth:`panels` otherwise)."""
        roles = sorted(set(map(report.role, report.layers)), key=ROLES.index)
        if role is None and len(roles) > 1:
            raise ValueError(f"the report has {', '.join(roles)} layers over different tokens: "
                             "pass role=..., or use AttentionPayload.panels(report)")  # fmt: skip
        names = [n for n in report.layers if role is None or report.role(n) == role]
        if not names:
            raise ValueError(f"role must be one of {roles}; got {role!r}")
        queries, keys = report.axes(names[0])
        pool, key_pool = math.ceil(len(queries) / max_cells), math.ceil(len(keys) / max_cells)
        k = _links_kept(len(queries), len(keys), top_k)
        pooled, idx, wts = [], [], []
        for amap in (report.maps[n] for n in names):
            means, w, i = _pooled_and_top(amap, pool, key_pool, k)
            pooled.append(means)
            idx.append(i)
            wts.append(w)
        target = report.target or "(the decoder start token)"
        shown = {"encoder": report.text, "decoder": target, "cross": f"{target} → {report.text}"}
        title = f"{PANEL_TITLES[role]}: {shown[role]}" if role in shown else report.text
        return cls(
            text=title, tokens=tuple(queries), layers=tuple(names),
            maps=torch.stack(pooled).float(), pool=pool, top_indices=torch.stack(idx),
            top_weights=torch.stack(wts).float(),
            key_tokens=None if keys is queries else tuple(keys),
            key_pool=None if keys is queries else key_pool, role=role or "self",
            steps=_steps(report, queries, role or "self"), byte_level=report.byte_level,
        )  # fmt: skip

    @classmethod
    def from_values(
        cls, text: str, tokens: tuple[str, ...], layers: tuple[str, ...], values: Tensor, *,
        measure: str, meaning: str = "", max_cells: int = 128, top_k: int = 8,
        byte_level: bool = False,
    ) -> AttentionPayload:  # fmt: skip
        """From dense values (L, H, T, T) of a measure: exact for short texts, block means like
        the raw maps for long ones; each token's links are its ``top_k`` largest in absolute
        value (signed measures keep their sign)."""
        T = len(tokens)
        if values.dim() != 4 or tuple(values.shape[-2:]) != (T, T):
            raise ValueError(f"values must be (L, H, T, T) for {len(tokens)} tokens; got "
                             f"{tuple(values.shape)}")  # fmt: skip
        values = values.detach().float().cpu()
        pool = math.ceil(T / max_cells)
        indices = values.abs().topk(_links_kept(T, T, top_k), dim=-1).indices
        return cls(
            text=text, tokens=tuple(tokens), layers=tuple(layers), maps=_block_means(values, pool),
            pool=pool, top_indices=indices, top_weights=values.gather(-1, indices),
            measure=measure, meaning=meaning, byte_level=byte_level,
        )  # fmt: skip

    @classmethod
    def panels(cls, report, **kw) -> list[AttentionPayload]:
        """One payload per kind of layer in ``report``: one for a one-stack model; encoder
        self-attention, decoder self-attention and cross-attention for an encoder–decoder."""
        roles = sorted(set(map(report.role, report.layers)), key=ROLES.index)
        return [cls.from_report(report, role=role, **kw) for role in roles]


PANEL_TITLES = {
    "encoder": "encoder self-attention (source ↔ source)",
    "decoder": "decoder self-attention (target ↔ target)",
    "cross": "cross-attention (target queries → source keys)",
}


# Links a (layer, head) keeps at most beyond 2,048 tokens: 4 per token at 4,096, so that page
# stays under 10 MB for a 6-layer, 12-head model (`benchmarks/viz.py`).
LINK_BUDGET = 16384


def _steps(report, queries: list[str], role: str) -> tuple[tuple[int, str], ...]:
    """After :func:`attnlab.inspection.report.generate`: for each generated token, the query
    row that predicted it (decoder LM: the last prompt row, then each fed-back token's row;
    encoder–decoder: the decoder's rows from its start token on), in the layers whose queries
    are the generated side (not an encoder's)."""
    generated = list(getattr(report, "generated", None) or ())
    if not generated or role == "encoder":
        return ()
    first = len(queries) - len(generated)  # as Report.generation_steps counts
    return tuple((first + k, token) for k, token in enumerate(generated))


_TILE_BYTES = 64 * 2**20  # rows of weights computed at once


def _pooled_and_top(amap, pool: int, key_pool: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """One streamed pass over a map of one text: its block means over ``pool`` × ``key_pool``
    tokens (H, P, Ps) (as :meth:`AttentionMap.pooled`; the exact map when both are 1) and each
    query's ``k`` strongest keys (H, T, k) weights and indices (as :meth:`AttentionMap.topk`).
    Each weight is computed once, not once per reduction."""
    _, H, Lq, Lk = amap.shape
    P, Ps = math.ceil(Lq / pool), math.ceil(Lk / key_pool)
    rows = max(pool, _TILE_BYTES // max(1, H * Lk * 4) // pool * pool)  # whole pooled rows
    sums = torch.zeros(H, P, Ps)
    weights, indices = [], []
    for start in range(0, Lq, rows):
        tile = amap.rows(start, min(Lq, start + rows))[0].float()  # (H, r, Lk)
        w, i = tile.topk(k, dim=-1)
        weights.append(w)
        indices.append(i)
        r, g = tile.shape[1], math.ceil(tile.shape[1] / pool)
        tile = torch.nn.functional.pad(tile, (0, Ps * key_pool - Lk, 0, g * pool - r))
        sums[:, start // pool : start // pool + g] = tile.view(H, g, pool, Ps, key_pool).sum((2, 4))
    counts_q = torch.full((P,), float(pool))
    counts_q[-1] = Lq - pool * (P - 1)
    counts_k = torch.full((Ps,), float(key_pool))
    counts_k[-1] = Lk - key_pool * (Ps - 1)
    means = sums if pool == key_pool == 1 else sums / (counts_q[:, None] * counts_k[None, :])
    return means, torch.cat(weights, dim=1), torch.cat(indices, dim=1)


def _links_kept(queries: int, keys: int, top_k: int) -> int:
    """Links kept per query: every one for short texts (≤ 64 keys), else the ``top_k``
    strongest, and no more than ``LINK_BUDGET`` per head (but at least 2) for very long ones."""
    if keys <= 64:
        return keys
    return min(keys, top_k, max(2, LINK_BUDGET // max(1, queries)))


def _block_means(values: Tensor, pool: int) -> Tensor:
    """(..., T, T) → (..., P, P) means over ``pool``×``pool`` blocks (the last ones partial),
    as :meth:`AttentionMap.pooled` computes them."""
    if pool == 1:
        return values
    T = values.shape[-1]
    P = math.ceil(T / pool)
    padded = torch.nn.functional.pad(values, (0, P * pool - T, 0, P * pool - T))
    sums = padded.unflatten(-1, (P, pool)).unflatten(-3, (P, pool)).sum(dim=(-3, -1))
    counts = torch.full((P,), float(pool))
    counts[-1] = T - pool * (P - 1)
    return sums / (counts[:, None] * counts[None, :])
