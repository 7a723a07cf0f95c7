"""Value-weighted norms (Kobayashi et al., 2020, "Attention is Not Only a Weight").

A weight α_ij only says how much of token j's *transformed* vector reaches position i. Head h
adds α_ij · f_h(x_j) to position i's output, where f_h(x_j) = v_j^h · W_O^h is token j's value
vector passed through head h's slice of the output projection. So the size of what moves is

    per head:   ‖α^h_ij · f_h(x_j)‖ = α^h_ij · ‖f_h(x_j)‖
    per layer:  ‖Σ_h α^h_ij · f_h(x_j)‖

(biases left out, as in the paper: they do not depend on j). What it means: a large weight on a
token whose transformed vector is tiny moves little (the paper's example: [CLS], [SEP] and
punctuation draw weight but carry small vectors). What it does not mean: what happens after the
layer (residual, MLP, later layers) is not included.

Exact and streamed: the weights come from the exact maps block by block, so with ``target`` only
one row per layer is formed (O(N·d) memory, 8k-token documents). The values are recorded during
the forward; the output projection W_O is the module that consumes the attention's output
(found by its input's storage for Hugging Face models; ``out_proj`` for attnlab's). A wrapped
projection (a LoRA adapter around ``nn.Linear``) is read as its base layer: merge adapters first.

Dimension legend: B batch, H heads, H_kv key/value heads, T tokens, d head size, D model width.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.inspection import hf
from attnlab.inspection.attention_map import AttentionMap
from attnlab.inspection.capture import capture
from attnlab.measures.layers import attention_layers

__all__ = ["value_norms"]

# One (B, H, rows, Lk, d) tile at a time: 64 MB tiles took value norms at N = 2048 just over
# a tenth of what the dense maps take.
_TILE_BYTES = 32 * 2**20


def value_norms(
    model: nn.Module,
    inputs: dict[str, Any],
    *,
    target: int | None = None,
    layer: str | None = None,
    combine_heads: bool = False,
) -> dict[str, Tensor]:
    """``{layer name: norms}``: (B, H, T, T) per head, or (B, T, T) with ``combine_heads``
    (‖Σ_h …‖); with ``target`` only that query row: (B, H, T) or (B, T). ``layer`` keeps one
    layer (a name from :func:`~attnlab.measures.layers.attention_layers`)."""
    layers = attention_layers(model)
    if layer is not None and layer not in layers:
        raise ValueError(f"layer must be one of {list(layers)}; got {layer!r}")
    with (
        torch.no_grad(),
        _recording(model, layers) as (values, projections),
        capture(model) as maps,
    ):
        model(**inputs)
    chosen = [layer] if layer is not None else list(layers)
    shared = [name for name in chosen if f"{name}#1" in maps]
    if shared:
        raise ValueError(
            f"{shared[0]} is called more than once per forward (weights shared across layers): "
            "value_norms pairs each module's values with one map and cannot tell the calls apart"
        )
    result = {}
    for name in chosen:
        v, w = _heads_of(values[name], projections[name])
        result[name] = _norms(maps[name], v, w, target, combine_heads)
    return result


def _heads_of(v: Tensor, w_out: Tensor) -> tuple[Tensor, Tensor]:
    """Values per query head and W_O per head: v (B, H_kv, T, d), W_O (D, H·d) → v (B, H, T, d)
    and w (D, H, d), so that f_h(x_j) = v[:, h, j] · w[:, h]ᵀ. f itself, (B, H, T, D), is never
    formed: it would be as large as the model's hidden states times H."""
    D, width = w_out.shape
    d = v.shape[-1]
    H = width // d
    v = v.repeat_interleave(H // v.shape[1], dim=1).float()  # (B, H, T, d)
    return v, w_out.float().reshape(D, H, d)  # head h's slice: columns h·d … (h + 1)·d


def _norms(amap: AttentionMap, v: Tensor, w: Tensor, target: int | None, combine: bool
           ) -> Tensor:  # fmt: skip
    T = amap.shape[2]
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, int) or not -T <= target < T:
            raise ValueError(f"target must be a position in [0, {T}); got {target!r}")
        rows = [(target % T, target % T + 1)]
    else:
        rows = amap.row_blocks(budget=_TILE_BYTES // v.shape[-1])  # (B, H, rows, Tk, d) tiles
    if not combine:  # ‖f_h(x_j)‖² = v_j^h G_h v_j^hᵀ with G_h = W_O^hᵀ W_O^h (d × d)
        gram = torch.einsum("Dhd,Dhe->hde", w, w)
        sizes = torch.einsum("bhtd,hde,bhte->bht", v, gram, v).clamp_min(0).sqrt()  # (B, H, Tk)
    parts = []
    for start, stop in rows:
        alpha = amap.rows(start, stop)  # (B, H, rows, Tk)
        if combine:  # ‖Σ_h α^h_ij f_h(x_j)‖ = ‖Σ_h (α^h_ij v_j^h) W_O^hᵀ‖: (B, rows, Tk)
            moved = alpha[..., None] * v[:, :, None]  # (B, H, rows, Tk, d)
            parts.append(torch.einsum("bhikd,Dhd->bikD", moved, w).norm(dim=-1))
        else:
            parts.append(alpha * sizes[:, :, None, :])
    out = torch.cat(parts, dim=-2)
    return out.squeeze(-2) if target is not None else out


@contextlib.contextmanager
def _recording(model: nn.Module, layers: dict[str, nn.Module]
               ) -> Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]:  # fmt: skip
    values: dict[str, Tensor] = {}
    projections: dict[str, Tensor] = {}
    if not hf.is_hf_model(model):
        handles = [m.hook_v.register_forward_hook(_keep(values, name))
                   for name, m in layers.items()]  # fmt: skip
        projections.update({name: m.out_proj.weight for name, m in layers.items()})
        try:
            yield values, projections
        finally:
            for handle in handles:
                handle.remove()
        return
    with _hf_recording(model, layers, values, projections):
        yield values, projections


def _keep(store: dict[str, Tensor], name: str) -> Callable[..., None]:
    def hook(_module: nn.Module, _inputs: tuple, v: Tensor) -> None:
        store[name] = v.detach()

    return hook


@contextlib.contextmanager
def _hf_recording(model: nn.Module, layers: dict[str, nn.Module], values: dict[str, Tensor],
                  projections: dict[str, Tensor]) -> Iterator[None]:  # fmt: skip
    """Record each attention module's values, and find its output projection: the linear
    module whose input shares storage with the attention function's output."""
    from attnlab.inspection.hf_attention import value_records

    records: dict[int, tuple[Tensor, Tensor]] = {}
    names = {id(m): name for name, m in layers.items()}

    def find(module: nn.Module, args: tuple) -> None:
        weight = _linear_weight(module)
        if weight is None or not args or not isinstance(args[0], Tensor):
            return
        ptr = args[0].untyped_storage().data_ptr()
        for key, (v, out) in list(records.items()):
            if out.untyped_storage().data_ptr() == ptr and names[key] not in projections:
                projections[names[key]] = weight
                values[names[key]] = v
                del records[key]  # found: its output need not be held to the end of the forward

    token = value_records.set(records)
    handle = nn.modules.module.register_module_forward_pre_hook(find)
    try:
        yield
    finally:
        handle.remove()
        value_records.reset(token)
    missing = [n for n in layers if n not in projections]
    if missing:
        raise ValueError(
            f"value_norms could not find the output projection of {missing[:3]} in "
            f"{type(model).__name__}: no linear layer took the attention output as its input"
        )


def _linear_weight(module: nn.Module) -> Tensor | None:
    """A linear map's weight as (out, in): nn.Linear's own, transformers' Conv1D transposed."""
    if isinstance(module, nn.Linear):
        weight = module.weight
    elif type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        weight = module.weight.t()
    else:
        return None
    if not weight.is_floating_point():
        raise ValueError(
            f"value_norms needs the output projection's real weights; {type(module).__name__} "
            f"stores {weight.dtype} (a quantized layer): dequantize the model first"
        )
    return weight
