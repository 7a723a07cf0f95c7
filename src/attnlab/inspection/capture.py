"""``attnlab.capture(model)``: record an exact :class:`AttentionMap` for every attention call.

    with attnlab.capture(model) as maps:
        model(ids)
    maps["layers.3.self_attn"].query(5)      # what token 5 attends to, every head, exact

Works on attnlab's own models (every :class:`attnlab.MultiHeadAttention` reports through
:mod:`attnlab.observe`) and on Hugging Face BERT-family and GPT-2 models running their default
SDPA attention (see :mod:`attnlab.inspection.hf`). The forward pass runs the same kernel with
capture on or off, so outputs are bit-identical; maps cost O(N·d) memory per layer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from torch import nn

from attnlab import observe
from attnlab.inspection.attention_map import AttentionMap

__all__ = ["Capture", "capture"]


class Capture(observe.Observer, dict):
    """A mapping from dotted layer name to the :class:`AttentionMap` of its latest call, in
    call order. ``calls`` keeps every call (e.g. each step of generation) as (name, map)."""

    needs_attention = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._names = {id(m): name for name, m in model.named_modules()}
        self._model_name = type(model).__name__
        self.calls: list[tuple[str, AttentionMap]] = []

    def attention(self, module: nn.Module | None, call: observe.AttentionCall) -> None:
        name = self._names.get(id(module)) if module is not None else None
        if name is None:
            name = "scaled_dot_product_attention" if module is None else type(module).__name__
        amap = AttentionMap(
            q=call.q.detach(), k=call.k.detach(), lse=call.lse.detach(), scale=call.scale,
            causal=call.causal, bias=None if call.mask is None else call.mask.detach(),
        )  # fmt: skip
        self.calls.append((name, amap))
        self.pop(name, None)  # keep mapping order = order of the latest calls
        self[name] = amap

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.values())


@contextlib.contextmanager
def capture(model: nn.Module) -> Iterator[Capture]:
    """Record every attention call made inside the block by ``model``'s attention layers."""
    from attnlab.inspection.hf import hf_support

    maps = Capture(model)
    with hf_support(model), observe.observing(maps):
        yield maps
    if not maps.calls:
        warnings.warn(
            f"capture recorded no attention call from {type(model).__name__}: was the model run "
            "inside the block? (In training mode with attention dropout the kernel that keeps "
            "exact maps is not used: call model.eval().)",
            stacklevel=3,
        )
