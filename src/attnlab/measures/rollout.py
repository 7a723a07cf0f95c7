"""Attention rollout (Abnar & Zuidema, 2020, "Quantifying Attention Flow in Transformers").

Raw weights say where one layer looks; a token's representation also flows through the
residual connection, and layers compose. Rollout accounts for both:

    Â_l = norm(r·I + (1 − r)·A_l)  A_l: layer l's weights reduced over heads (mean by default),
                                   r = 0.5 (the paper's residual share); norm divides each row
                                   by its sum, as the paper does (a no-op for head means of
                                   rows that sum to 1; it matters for max/min over heads,
                                   attention sinks, and padding rows, which become I)
    R   = Â_L · Â_{L−1} · … · Â_1   rows: positions at the top layer; columns: input tokens

What it means: how much of each input token reaches a top-layer position if information mixed
only through attention and the residual stream, linearly. What it does not mean: it ignores the
value vectors, the MLPs and the layer norms, so it is a model of attention flow, not of what the
model used (compare value norms, gradients and ablations in :mod:`attnlab.measures`).

Two forms: :func:`rollout` builds the (B, T, T) matrix from head-reduced tiles (never a
(B, H, T, T) tensor); with ``target=i`` it pushes the one-hot row of position i down through the
layers, r ← r·Â_l, recomputing each layer's rows block by block from the exact maps and skipping
rows where r is 0, so memory stays O(N·d) and 8k-token documents fit.

Dimension legend: B batch, H heads, T tokens, L layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from attnlab.inspection.attention_map import AttentionMap

__all__ = ["HEAD_REDUCTIONS", "reduce_heads", "rollout", "self_attention_maps"]

HEAD_REDUCTIONS = ("mean", "max", "min")
_TILE_BYTES = 32 * 2**20  # rows recomputed at a time (B, H, rows, T)
_FEW_ROWS = 64  # r·Â over at most this many rows is recomputed, not one kernel call


def self_attention_maps(maps: Mapping[str, AttentionMap] | Sequence[AttentionMap]
                        ) -> list[AttentionMap]:  # fmt: skip
    """The self-attention maps that rollout composes, bottom layer first: a capture's
    ``"self"`` layers (one-stack models) or its ``"encoder"`` layers (encoder–decoders); a plain
    mapping's or sequence's maps in order."""
    role = getattr(maps, "of_role", None)
    if role is not None:
        names = maps.of_role("self") or maps.of_role("encoder")
        chosen = [maps[name] for name in names]
    else:
        chosen = list(maps.values()) if isinstance(maps, Mapping) else list(maps)
    if not chosen:
        raise ValueError("rollout needs at least one self-attention map; got none")
    T = chosen[0].shape[2]
    for amap in chosen:
        if amap.shape[2] != T or amap.shape[3] != T:
            raise ValueError(
                f"rollout composes square self-attention maps over the same {T} tokens; got a "
                f"map of shape {amap.shape}"
            )
    return chosen


def reduce_heads(tile: Tensor, heads: str | int) -> Tensor:
    """(B, H, rows, T) → (B, rows, T): the mean, max or min over heads, or one head."""
    if isinstance(heads, int) and not isinstance(heads, bool):
        if not -tile.shape[1] <= heads < tile.shape[1]:
            raise ValueError(f"heads must be a head index in [0, {tile.shape[1]}); got {heads}")
        return tile[:, heads]
    if heads == "mean":
        return tile.mean(dim=1)
    if heads == "max":
        return tile.amax(dim=1)
    if heads == "min":
        return tile.amin(dim=1)
    raise ValueError(f"heads must be one of {HEAD_REDUCTIONS} or a head index; got {heads!r}")


def rollout(
    maps: Mapping[str, AttentionMap] | Sequence[AttentionMap],
    *,
    target: int | None = None,
    heads: str | int = "mean",
    residual: float = 0.5,
) -> Tensor:
    """Rollout over the self-attention layers of ``maps`` (bottom first): (B, T, T), or with
    ``target`` the (B, T) row of that top-layer position, streamed."""
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1]; got {residual}")
    layers = self_attention_maps(maps)
    B, _, T, _ = layers[0].shape
    if target is None:
        return _full(layers, heads, residual)
    if isinstance(target, bool) or not isinstance(target, int) or not -T <= target < T:
        raise ValueError(f"target must be a position in [0, {T}); got {target!r}")
    r = torch.zeros(B, T, device=layers[0].q.device)
    r[:, target % T] = 1.0
    for amap in reversed(layers):  # top layer first: r ← r·Â_l
        r = _push(r, amap, heads, residual)
    return r


def _full(layers: list[AttentionMap], heads: str | int, residual: float) -> Tensor:
    B, _, T, _ = layers[0].shape
    device = layers[0].q.device
    result = torch.eye(T, device=device).expand(B, T, T).clone()
    for amap in layers:  # bottom first: R ← Â_l · R
        A = torch.empty(B, T, T, device=device)
        for start, stop in amap.row_blocks(budget=_TILE_BYTES):
            A[:, start:stop] = _mixed(reduce_heads(amap.rows(start, stop), heads), start, residual)
        result = torch.bmm(A, result)
    return result


def _mixed(tile: Tensor, start: int, residual: float) -> Tensor:
    """Rows [start, start + rows) of Â = norm(r·I + (1 − r)·A): (B, rows, T)."""
    tile = tile * (1.0 - residual)
    rows = torch.arange(tile.shape[1], device=tile.device)
    tile[:, rows, rows + start] += residual
    return tile / tile.sum(-1, keepdim=True).clamp_min(torch.finfo(tile.dtype).tiny)


def _push(r: Tensor, amap: AttentionMap, heads: str | int, residual: float) -> Tensor:
    """r·Â for one layer: (B, T) → (B, T).

    For one head or the head mean, Â is linear in the weights up to its row normalisation:
    with z_i = residual + (1 − residual)·mass_i (row i's sum before normalising; mass from
    :meth:`AttentionMap.row_mass`) and c = r / z, r·Â = residual·c + (1 − residual)·c·A, where
    c·A = Σ_i c_i·A[i, :] is :meth:`AttentionMap.received` (one flash-kernel call where the map
    allows it). Max and min over heads are not linear: their rows are recomputed block by
    block, reading only rows where r is not 0; so are layers where r has few rows that are
    not 0 (the top layer of a target: its one row)."""
    live = r.abs().sum(0).nonzero().flatten()
    span = int(live[-1]) + 1 - int(live[0]) if live.numel() else 0
    linear = heads == "mean" or (isinstance(heads, int) and not isinstance(heads, bool))
    if linear and span > _FEW_ROWS:
        one = amap if heads == "mean" else amap.of_heads(heads)
        mass = one.row_mass().mean(dim=1)  # (B, T)
        z = (residual + (1.0 - residual) * mass).clamp_min(torch.finfo(torch.float32).tiny)
        c = r / z
        return residual * c + (1.0 - residual) * one.received(c[:, None]).mean(dim=1)
    out = torch.zeros_like(r)
    if live.numel() == 0:
        return out
    for start, stop in amap.row_blocks(int(live[0]), int(live[-1]) + 1, budget=_TILE_BYTES):
        tile = _mixed(reduce_heads(amap.rows(start, stop), heads), start, residual)
        out += torch.einsum("br,brt->bt", r[:, start:stop], tile)  # (B, rows, T) → (B, T)
    return out
