"""Static figures (matplotlib, PNG or SVG by the file suffix): a heatmap per head, all heads of
a layer, all layers × heads, one token's links, and the Q–K–V flow of one query with numbers.

Long texts are drawn from pooled maps and labels thin out to at most ``max_labels``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from attnlab.atomic import atomic_write
from attnlab.viz.payload import AttentionPayload
from attnlab.viz.tokens import shown

__all__ = ["head_grid", "heatmap", "model_grid", "qkv_flow", "token_links"]

CMAP = "magma"  # bright = high weight, readable in print and for colour-blind readers
_TAB20 = plt.get_cmap("tab20").colors
HEAD_COLOURS = _TAB20[0::2] + _TAB20[1::2]  # the 10 strong colours first, then light ones


def _labels(payload: AttentionPayload, max_labels: int, *, keys: bool = False
            ) -> tuple[list[int], list[str]]:  # fmt: skip
    """Tick positions (in map cells) and token labels of the queries (or ``keys``), thinned to
    at most ``max_labels``."""
    tokens, pool = (payload.keys, payload.cell_keys) if keys else (payload.tokens, payload.pool)
    cells = payload.maps.shape[-1 if keys else -2]
    step = max(1, -(-cells // max_labels))
    ticks = list(range(0, cells, step))
    return ticks, [_token(payload, tokens[min(c * pool, len(tokens) - 1)]) for c in ticks]


def _token(payload: AttentionPayload, token: str) -> str:
    """A token as figures write it (:func:`attnlab.viz.tokens.shown`)."""
    return shown(token, byte_level=payload.byte_level)


def _stack(payload: AttentionPayload) -> str:
    """ "cross-attention " etc. before "layer" for an encoder–decoder's panels."""
    return {"encoder": "encoder ", "decoder": "decoder ", "cross": "cross-attention "}.get(
        payload.role, ""
    )


def _colours(values) -> dict:
    """imshow colours: magma from 0 for weights and norms; for signed measures (gradient ×
    attention) a diverging scale centred on 0, purple below, orange above."""
    if (values < 0).any():
        peak = float(abs(values).max()) or 1.0
        return {"cmap": "PuOr_r", "vmin": -peak, "vmax": peak}
    return {"cmap": CMAP, "vmin": 0}


def _what(payload: AttentionPayload) -> str:
    """What the values are: "attention weight", "attention rollout", ..."""
    from attnlab.viz.measures import MEASURES

    return MEASURES[payload.measure][0]


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write atomically (a reader never sees half a picture); format from the suffix."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def heatmap(payload: AttentionPayload, layer: int, head: int, path: str | Path, *,
            max_labels: int = 60) -> Path:  # fmt: skip
    """One head: rows = queries, columns = keys, bright = high weight, with a colour bar."""
    payload.check(layer, head)
    weights = payload.maps[layer, head].numpy()
    width, height = (min(12.0, 3 + 0.18 * min(len(t), max_labels))
                     for t in (payload.keys, payload.tokens))  # fmt: skip
    fig, ax = plt.subplots(figsize=(width + 1.2, height))
    image = ax.imshow(weights, interpolation="nearest", **_colours(weights))
    ax.set_xticks(*_labels(payload, max_labels, keys=True), rotation=90, fontsize=8)
    ax.set_yticks(*_labels(payload, max_labels), fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    pooled = "" if payload.exact else (
        f" (mean over {payload.pool}×{payload.cell_keys} token blocks)")  # fmt: skip
    where = "all layers" if payload.measure == "rollout" else f"layer {layer}, head {head}"
    prefix = "" if payload.measure == "attention" else f"{_what(payload)}, "
    ax.set_title(f"{prefix}{_stack(payload)}{where}{pooled}")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=_what(payload))
    return _save(fig, path)


def head_grid(payload: AttentionPayload, layer: int, path: str | Path) -> Path:
    """All heads of one layer side by side, each on its own colour scale."""
    payload.check(layer)
    H = payload.n_heads
    cols = min(H, 4 if H <= 8 else 6)
    rows = -(-H // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    ticks, names = _labels(payload, 12)
    for h, ax in enumerate(axes.flat):
        if h >= H:
            ax.axis("off")
            continue
        values = payload.maps[layer, h].numpy()
        ax.imshow(values, interpolation="nearest", **_colours(values))
        ax.set_title(f"head {h}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks(ticks if h % cols == 0 else [], names if h % cols == 0 else [], fontsize=6)
    fig.suptitle(f"{_what(payload)}, {_stack(payload)}layer {layer}: every head on the same text")
    return _save(fig, path)


def model_grid(payload: AttentionPayload, path: str | Path) -> Path:
    """Thumbnails of every layer (rows) × head (columns)."""
    L, H = payload.n_layers, payload.n_heads
    fig, axes = plt.subplots(L, H, figsize=(1.1 * H, 1.1 * L), squeeze=False)
    for layer in range(L):
        for h in range(H):
            ax = axes[layer, h]
            values = payload.maps[layer, h].numpy()
            ax.imshow(values, interpolation="nearest", **_colours(values))
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"h{h}", fontsize=7)
            if h == 0:
                ax.set_ylabel(f"L{layer}", fontsize=7)
    fig.suptitle(f"{_what(payload)}: {_stack(payload)}all layers × heads")
    return _save(fig, path)


def token_links(payload: AttentionPayload, layer: int, token: str | int, path: str | Path, *,
                heads: list[int] | None = None, max_labels: int = 80) -> Path:  # fmt: skip
    """Lines from one token (left) to the tokens it attends to (right): thickness and opacity =
    weight, one colour per head."""
    payload.check(layer)
    i = payload.token_index(token) if isinstance(token, str) else token
    heads = list(range(payload.n_heads)) if heads is None else heads
    for h in heads:
        payload.check(head=h)
    T, S = len(payload.tokens), len(payload.keys)
    shown = max_labels >= max(T, S)
    fig, ax = plt.subplots(
        figsize=(6, max(3, min(20, 0.28 * (max(T, S) if shown else max_labels))))
    )
    y = {t: 1 - t / max(1, T - 1) for t in range(T)}
    y_key = {t: 1 - t / max(1, S - 1) for t in range(S)}
    for t in range(T) if shown else (i,):
        ax.text(0, y[t], _token(payload, payload.tokens[t]), ha="right", va="center", fontsize=8,
                fontweight="bold" if t == i else "normal")  # fmt: skip
    right = range(S) if shown else sorted({j for h in heads for j, _ in payload.links(layer, h, i)})
    for t in right:
        ax.text(1, y_key[t], _token(payload, payload.keys[t]), ha="left", va="center", fontsize=8)
    peak = (
        1.0
        if payload.measure == "attention"
        else float(payload.top_weights[layer, :, i].abs().max().clamp(min=1e-12))
    )
    for h in heads:
        colour = HEAD_COLOURS[h % len(HEAD_COLOURS)]
        for j, w in payload.links(layer, h, i):
            s = abs(w) / peak  # weights as they are; other measures relative to their peak
            if s < 0.03:  # hairlines from every head would hide the strong links
                continue
            ax.plot([0.02, 0.98], [y[i], y_key[j]], color=colour, alpha=min(1.0, 0.1 + 0.9 * s),
                    linewidth=0.5 + 6 * s, linestyle="--" if w < 0 else "-")  # fmt: skip
    handles = [
        plt.Line2D([], [], color=HEAD_COLOURS[h % len(HEAD_COLOURS)], label=f"head {h}")
        for h in heads
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=6,
              fontsize=7, frameon=False)  # fmt: skip
    ax.set_xlim(-0.6, 1.6)
    ax.axis("off")
    what = "attends to" if payload.measure == "attention" else f"draws from ({_what(payload)})"
    where = "all layers" if payload.measure == "rollout" else f"layer {layer}"
    ax.set_title(f'what "{_token(payload, payload.tokens[i])}" {what}, {_stack(payload)}{where}')
    return _save(fig, path)


def qkv_flow(path: str | Path, *, tokens: tuple[str, ...] = ("the", "cat", "sat", "on", "mat"),
             query: int = 2, d_k: int = 4, seed: int = 0) -> Path:  # fmt: skip
    """The Q–K–V computation for one query on a small seeded example, with the actual numbers:
    scores q·k/√d_k → softmax weights → weighted sum of values = context vector."""
    g = torch.Generator().manual_seed(seed)
    T = len(tokens)
    x = torch.randn(T, 8, generator=g)
    w_q, w_k, w_v = (torch.randn(8, d_k, generator=g) / 8**0.5 for _ in range(3))
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (T, d_k) each
    scores = k @ q[query] / d_k**0.5  # (T,)
    weights = torch.softmax(scores, 0)
    context = weights @ v  # (d_k,)
    fig, axes = plt.subplots(
        1, 4, figsize=(15, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.2], "wspace": 0.45}
    )
    steps = [
        ("scores = q·k / √d_k", scores), ("weights = softmax(scores)", weights),
    ]  # fmt: skip
    for ax, (title, values) in zip(axes[:2], steps, strict=True):
        ax.barh(range(T), values.tolist(), color="#6a51a3")
        ax.set_yticks(range(T), tokens)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        for t, val in enumerate(values.tolist()):
            ax.text(val, t, f" {val:.2f}", va="center", fontsize=8)
    ax = axes[2]
    ax.imshow((weights[:, None] * v).numpy(), cmap="PuOr", aspect="auto")
    ax.set_yticks(range(T), tokens)
    ax.set_xticks(range(d_k), [f"v{j}" for j in range(d_k)])
    ax.set_title("weight × value (each row)", fontsize=10)
    ax = axes[3]
    ax.barh(range(d_k), context.tolist(), color="#238b45")
    ax.set_yticks(range(d_k), [f"c{j}" for j in range(d_k)])
    ax.invert_yaxis()
    for j, val in enumerate(context.tolist()):
        ax.text(val, j, f" {val:.2f}", va="center", fontsize=8)
    ax.set_title("context = Σ weight·value", fontsize=10)
    fig.suptitle(
        f'query "{tokens[query]}": projections → scores → softmax → weighted sum → context vector',
        y=1.04,
    )
    return _save(fig, path)
