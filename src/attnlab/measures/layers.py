"""Which attention layers a measure covers, and calling a model with keyword inputs.

A measure's table has one row per attention module, in model order: attnlab models' every
:class:`~attnlab.MultiHeadAttention` (``layers.0.self_attn``, ``decoder.layers.1.cross_attn``),
Hugging Face models' every module that calls transformers' attention interface
(``model.layers.0.self_attn``, ``encoder.layer.0.attention.self``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from attnlab.inspection import hf

__all__ = ["attention_layers", "n_heads", "output_for", "replicate", "split_output"]


def attention_layers(model: nn.Module) -> dict[str, nn.Module]:
    if hf.is_hf_model(model):
        return hf.attention_modules(model)
    from attnlab.nn.attention import MultiHeadAttention

    return {n: m for n, m in model.named_modules() if isinstance(m, MultiHeadAttention)}


def n_heads(module: nn.Module) -> int:
    return module.n_heads if hasattr(module, "hook_z") else hf._n_heads(module)


def output_for(output: Callable[[Any], Tensor], result: Any) -> Tensor:
    value = output(result)
    if not isinstance(value, Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"output must return a scalar tensor; it returned {shape}")
    return value.reshape(())


def replicate(inputs: dict[str, Any], copies: int) -> dict[str, Any]:
    """Each batched tensor input repeated ``copies`` times along the batch: copy r holds rows
    [r·B, (r + 1)·B)."""
    return {k: v.repeat(copies, *(1,) * (v.dim() - 1)) if isinstance(v, Tensor) and v.dim() else v
            for k, v in inputs.items()}  # fmt: skip


def split_output(result: Any, copies: int, batch: int) -> list[Any]:
    """The model output of a replicated batch, as ``copies`` outputs of the original batch
    (tensor fields with a leading R·B dimension sliced, tuples of them too; anything else,
    e.g. a cache or a batch-mean loss, dropped to None so it cannot be misread)."""

    def part(value: Any, r: int) -> Any:
        if isinstance(value, Tensor):
            batched = value.dim() and value.shape[0] == copies * batch
            return value[r * batch : (r + 1) * batch] if batched else None
        if isinstance(value, tuple) and value and all(isinstance(v, Tensor) for v in value):
            return tuple(part(v, r) for v in value)
        return None

    if isinstance(result, Tensor):
        return [part(result, r) for r in range(copies)]
    if isinstance(result, tuple) and hasattr(result, "_fields"):  # NamedTuple outputs
        return [type(result)(*(part(v, r) for v in result)) for r in range(copies)]
    if isinstance(result, dict):  # Hugging Face ModelOutput
        return [type(result)(**{k: part(v, r) for k, v in result.items()}) for r in range(copies)]
    raise ValueError(f"cannot split a model output of type {type(result).__name__} by sample")


def first_tensor(result: Any) -> Tensor:
    if isinstance(result, Tensor):
        return result
    values = result.values() if isinstance(result, dict) else result
    return next(v for v in values if isinstance(v, Tensor))
