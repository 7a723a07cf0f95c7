"""Parameter accounting: a model's total and by top-level component, counting shared tensors
once; and the formula for multi-head attention's count."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ParameterCount", "attention_parameter_count", "count_parameters"]


@dataclass(frozen=True)
class ParameterCount:
    total: int
    by_component: dict[str, int]  # top-level child name → parameters first seen there

    def __str__(self) -> str:
        width = max(map(len, self.by_component), default=5)
        rows = [f"{name:<{width}}  {n:>12,}" for name, n in self.by_component.items()]
        return "\n".join([*rows, f"{'total':<{width}}  {self.total:>12,}"])


def count_parameters(model: nn.Module) -> ParameterCount:
    seen: set[int] = set()
    by_component: dict[str, int] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        component = name.split(".")[0]
        by_component[component] = by_component.get(component, 0) + param.numel()
    return ParameterCount(sum(by_component.values()), by_component)


def attention_parameter_count(
    d_model: int, n_heads: int, *, kdim: int | None = None, vdim: int | None = None,
    n_kv_heads: int | None = None, bias: bool = True,
) -> int:  # fmt: skip
    """Parameters of multi-head attention: 4·D² + 4·D with biases for self-attention.

    The count does not depend on ``n_heads``: W_Q, W_K, W_V, W_O are D×D whatever H is, and the
    heads are views of their columns. ``attention_parameter_count(512, 8) ==
    attention_parameter_count(512, 1)``. Only grouped-query attention (``n_kv_heads < n_heads``)
    shrinks W_K and W_V to D × (H_kv·d_h).
    """
    kdim, vdim = kdim or d_model, vdim or d_model
    kv_width = (n_kv_heads or n_heads) * (d_model // n_heads)
    weights = d_model * d_model * 2 + (kdim + vdim) * kv_width
    biases = (2 * d_model + 2 * kv_width) if bias else 0
    return weights + biases
