"""Head ablation effects: what each head does to a chosen output, not only where it looks.

    effect[l, h] = output(model with head h of layer l ablated) − output(model)

Ablating sets the head's output z (before W_O) to 0 (``mode="zero"``) or to its mean over the
batch and positions (``"mean"``, which keeps the head's average contribution and removes only
what depends on the input), as :func:`attnlab.ablate_heads` does. One forward per layer: the
batch is repeated H times and copy h ablates head h, so a 6 × 12 model costs 6 forwards, not 72.

What it means: the output's sensitivity to removing one head, all else equal. What it does not
mean: heads interact (two heads can back each other up, so each alone shows little effect), and
mean ablation still moves the input off the training distribution.

Dimension legend: L attention layers, H heads, R = H copies of the batch, B batch, T tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.hooks import ABLATION_MODES, ablate_heads_
from attnlab.inspection import hf
from attnlab.measures.layers import attention_layers, n_heads, output_for, replicate, split_output

__all__ = ["head_effects"]


def head_effects(
    model: nn.Module,
    inputs: dict[str, Any],
    output: Callable[[Any], Tensor],
    *,
    mode: str = "zero",
) -> Tensor:
    """(L, H) change of ``output(model(**inputs))`` when each head is ablated, layers in
    :func:`~attnlab.measures.layers.attention_layers` order. ``output`` takes the model's
    output object and returns a scalar tensor, computed from per-sample fields (logits, hidden
    states: a batch-mean loss cannot be split by copy and arrives as None)."""
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {list(ABLATION_MODES)}; got {mode!r}")
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no attention layer to ablate")
    batch = next(v.shape[0] for v in inputs.values() if isinstance(v, Tensor) and v.dim())
    with torch.no_grad(), contextlib.ExitStack() as stack:
        if hf.is_hf_model(model):
            stack.enter_context(hf.hf_support(model))
        base = output_for(output, model(**inputs))
        rows = []
        for module in layers.values():
            H = n_heads(module)
            with _each_copy_ablates_its_head(model, module, H, batch, mode):
                result = model(**replicate(inputs, H))
            copies = split_output(result, H, batch)
            rows.append(torch.stack([output_for(output, c) for c in copies]) - base)
    width = max(r.shape[0] for r in rows)
    return torch.stack([torch.nn.functional.pad(r, (0, width - r.shape[0])) for r in rows])


def _ablate_copies(x: Tensor, heads: int, mode: str, head_axis: int) -> Tensor:
    """Copy r of the batch (x (R·B, ...) viewed as (R, B, ...)) gets head r ablated
    (:func:`attnlab.hooks.ablate_heads_`); ``head_axis`` is the head dimension of x."""
    x = x.clone()
    view = x.view(heads, x.shape[0] // heads, *x.shape[1:])  # (R, B, ...)
    for r in range(heads):
        ablate_heads_(view[r], [r], mode, head_axis)
    return x


@contextlib.contextmanager
def _each_copy_ablates_its_head(
    model: nn.Module, module: nn.Module, heads: int, batch: int, mode: str
) -> Iterator[None]:
    if hasattr(module, "hook_z"):  # attnlab: z (R·B, T, H, d_h) at hook_z

        def hook(_module: nn.Module, _inputs: tuple, z: Tensor) -> Tensor:
            return _ablate_copies(z, heads, mode, head_axis=2)  # z (R·B, T, H, d_h)

        handle = module.hook_z.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
        return
    from attnlab.inspection.hf_attention import head_edits

    def edit(out: Tensor) -> Tensor:  # (R·B, H, T, d_v)
        return _ablate_copies(out, heads, mode, head_axis=1)

    token = head_edits.set({**(head_edits.get() or {}), id(module): edit})
    try:
        yield
    finally:
        head_edits.reset(token)
