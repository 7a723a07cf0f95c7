"""Gradient × attention: how much a chosen output depends on each attention weight.

    G[l, h, i, j] = A[l, h, i, j] · ∂output / ∂A[l, h, i, j]

the first-order change of the output if weight (i → j) of head h in layer l were removed. Dense:
each layer's (B, H, T, T) weights are kept with their autograd graph, so texts stay short (a few
hundred tokens: 6 layers × 12 heads × 512² floats is 75 MB, plus the graph).

What it means: a local, linear estimate of each weight's influence on the output. What it does
not mean: gradients saturate (a weight can matter a lot where the gradient is flat), and the
estimate says nothing about moving several weights at once.

attnlab models expose their weights through ``hook_pattern`` (the output is then P·v, so the
gradient flows through them); Hugging Face models run their eager attention for the call (the
weights they return are the ones multiplied with the values) and are switched back afterwards.
Dimension legend: L layers, B batch, H heads, T tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.inspection import hf
from attnlab.measures.layers import attention_layers, output_for

__all__ = ["grad_attention"]


def grad_attention(
    model: nn.Module, inputs: dict[str, Any], output: Callable[[Any], Tensor]
) -> dict[str, Tensor]:
    """``{layer name: A ⊙ ∂output/∂A (B, H, Tq, Tk)}`` for every attention layer, in model
    order. ``output`` takes the model's output object and returns a scalar tensor."""
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no attention layer")
    with torch.enable_grad():
        if hf.is_hf_model(model):
            with _eager(model):
                result = model(**inputs, output_attentions=True)
            patterns = _hf_patterns(model, result, list(layers))
        else:
            patterns = {}
            with _recording(layers, patterns):
                result = model(**inputs)
        value = output_for(output, result)
        if not value.requires_grad:
            raise ValueError(
                "output does not depend on the attention through autograd (are the model's "
                "parameters frozen, or was it computed under torch.no_grad()?)"
            )
        grads = torch.autograd.grad(value, list(patterns.values()), allow_unused=True)
    return {name: (A * (torch.zeros_like(A) if g is None else g)).detach()
            for (name, A), g in zip(patterns.items(), grads, strict=True)}  # fmt: skip


@contextlib.contextmanager
def _recording(layers: dict[str, nn.Module], patterns: dict[str, Tensor]) -> Iterator[None]:
    handles = []

    def keep(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: tuple, pattern: Tensor) -> None:
            patterns[name] = pattern

        return hook

    try:
        for name, module in layers.items():
            handles.append(module.hook_pattern.register_forward_hook(keep(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _eager(model: nn.Module) -> Iterator[None]:
    with hf.restoring_implementations(model):
        model.set_attn_implementation("eager")
        yield


def _hf_patterns(model: nn.Module, result: Any, names: list[str]) -> dict[str, Tensor]:
    """Name eager's returned weights after the attention modules: one stack in order; an
    encoder–decoder's encoder, decoder-self and cross lists after their modules."""
    from attnlab.inspection.capture import Capture

    roles = Capture(model)
    if getattr(model.config, "is_encoder_decoder", False):
        fields = {"encoder": "encoder_attentions", "decoder": "decoder_attentions",
                  "cross": "cross_attentions"}  # fmt: skip
    else:
        fields = {"self": "attentions"}
    patterns = {}
    for role, field in fields.items():
        weights = list(getattr(result, field, None) or ())
        chosen = [n for n in names if roles.role(n) == role]
        if len(weights) != len(chosen):
            raise ValueError(
                f"{type(model).__name__} returned {len(weights)} {field} for {len(chosen)} "
                f"{role} attention layers"
            )
        patterns.update(zip(chosen, weights, strict=True))
    return {n: patterns[n] for n in names if n in patterns}
