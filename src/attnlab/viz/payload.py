"""The data every picture is drawn from: tokens and per-layer, per-head attention.

Short texts carry exact maps. Long texts carry maps average-pooled to at most ``max_cells``
rows and columns (streamed from :class:`AttentionMap`, never N×N in memory) plus, for every token
and head, its ``top_k`` strongest links, so pictures stay readable and files stay small.

A payload may also hold values other than raw weights (``measure``: rollout, value norms,
gradient × attention; see :mod:`attnlab.viz.measures`), built with :meth:`from_values`, and the
same text under other measures (``measures``, for the page's measure selector).

Dimension legend: L layers, H heads, T tokens, P pooled size (≤ max_cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AttentionPayload"]


@dataclass(frozen=True)
class AttentionPayload:
    text: str
    tokens: tuple[str, ...]
    layers: tuple[str, ...]  # layer names, e.g. "encoder.layer.3.attention.self"
    maps: Tensor  # (L, H, P, P) float32: exact weights when P == T, else block means
    pool: int  # tokens per pooled cell (1 = exact maps)
    top_indices: Tensor  # (L, H, T, K) int64: each token's strongest keys
    top_weights: Tensor  # (L, H, T, K) float32: their weights
    measure: str = "attention"  # what the values are (a name of attnlab.viz.measures.MEASURES)
    meaning: str = ""  # one line on what the values mean (shown on the page)
    measures: tuple[AttentionPayload, ...] = ()  # the same text under other measures (the page)

    def __post_init__(self) -> None:
        L, H, P, P2 = self.maps.shape
        T = len(self.tokens)
        if P != P2 or math.ceil(T / self.pool) != P:
            raise ValueError(
                f"maps must be (L, H, P, P) with P = ceil(T / pool) = {math.ceil(T / self.pool)}; "
                f"got {tuple(self.maps.shape)} for {T} tokens, pool {self.pool}"
            )
        if len(self.layers) != L:
            raise ValueError(f"need one layer name per map: {L} maps, {len(self.layers)} names")
        if (
            self.top_indices.shape[:3] != (L, H, T)
            or self.top_weights.shape != self.top_indices.shape
        ):
            raise ValueError(
                f"top_indices/top_weights must be (L, H, T, K) = ({L}, {H}, {T}, K); got "
                f"{tuple(self.top_indices.shape)} and {tuple(self.top_weights.shape)}"
            )

    @property
    def n_layers(self) -> int:
        return self.maps.shape[0]

    @property
    def n_heads(self) -> int:
        return self.maps.shape[1]

    @property
    def exact(self) -> bool:
        return self.pool == 1

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
    def from_report(cls, report, *, max_cells: int = 128, top_k: int = 8) -> AttentionPayload:
        """From an :func:`attnlab.inspect` report (batch of one text)."""
        maps = list(report.maps.values())
        T = len(report.tokens)
        pool = math.ceil(T / max_cells)
        k = _links_kept(T, top_k)
        pooled, idx, wts = [], [], []
        for amap in maps:
            pooled.append(amap.dense()[0] if pool == 1 else amap.pooled(max_cells)[0])
            w, i = amap.topk(k)
            idx.append(i[0])
            wts.append(w[0])
        return cls(
            text=report.text, tokens=tuple(report.tokens), layers=tuple(report.maps),
            maps=torch.stack(pooled).float(), pool=pool, top_indices=torch.stack(idx),
            top_weights=torch.stack(wts).float(),
        )  # fmt: skip

    @classmethod
    def from_values(
        cls, text: str, tokens: tuple[str, ...], layers: tuple[str, ...], values: Tensor, *,
        measure: str, meaning: str = "", max_cells: int = 128, top_k: int = 8,
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
        indices = values.abs().topk(_links_kept(T, top_k), dim=-1).indices
        return cls(
            text=text, tokens=tuple(tokens), layers=tuple(layers), maps=_block_means(values, pool),
            pool=pool, top_indices=indices, top_weights=values.gather(-1, indices),
            measure=measure, meaning=meaning,
        )  # fmt: skip


def _links_kept(T: int, top_k: int) -> int:
    """Links kept per token: every one for short texts, the ``top_k`` strongest otherwise."""
    return min(T, top_k if T > 64 else T)


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
