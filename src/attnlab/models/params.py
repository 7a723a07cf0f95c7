"""Parameter accounting: total and by top-level component, counting shared tensors once."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ParameterCount", "count_parameters"]


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
