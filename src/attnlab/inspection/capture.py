"""``attnlab.capture(model)``: record an exact :class:`AttentionMap` for every attention call.

    with attnlab.capture(model) as maps:
        model(ids)
    maps["layers.3.self_attn"].query(5)      # what token 5 attends to, every head, exact

Works on attnlab's own models (every :class:`attnlab.MultiHeadAttention` reports through
:mod:`attnlab.observe`) and on Hugging Face models whose attention goes through transformers'
``AttentionInterface`` (see :mod:`attnlab.inspection.hf`). During generation with a KV cache a
layer's calls are joined into one map whose rows are the steps (:mod:`attnlab.inspection.steps`).
Every kernel route reports its call (routes whose kernel keeps no log-sum-exp compute it block by
block), and a call that did not report raises a ValueError naming the layer: no layer is missed
silently. In training mode the maps are
the weights before dropout. Maps cost O(N·d) memory per layer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from torch import nn

from attnlab import observe
from attnlab.inspection.attention_map import AttentionMap
from attnlab.inspection.steps import StepChain

__all__ = ["ROLES", "Capture", "capture"]

# What a layer's queries and keys are: "self" (one stack: tokens ↔ tokens), "encoder" (source ↔
# source), "decoder" (target ↔ target, causal) or "cross" (target queries ↔ source keys).
ROLES = ("self", "encoder", "decoder", "cross")
_CROSS_NAMES = ("encoder_attn", "EncDecAttention", "crossattention", "cross_attn",
                "cross_attention", "encoder_decoder_attention")  # fmt: skip


class Capture(observe.Observer, dict):
    """A mapping from dotted layer name to the :class:`AttentionMap` of its latest call, in
    call order. ``calls`` keeps every call (e.g. each step of generation) as (name, map)."""

    needs_attention = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._names = {id(m): name for name, m in model.named_modules()}
        self._model_name = type(model).__name__
        config = getattr(model, "config", None)
        self._two_stacks = bool(getattr(config, "is_encoder_decoder", False)) or (
            hasattr(model, "encoder") and hasattr(model, "decoder")
        )
        self.calls: list[tuple[str, AttentionMap]] = []
        self._chains: dict[str, StepChain] = {}
        self._continuing = False  # did the latest self-attention call continue its chain?
        self._calls_this_forward: dict[str, int] = {}  # reset by a pre-hook on the model
        self._unjoined: set[str] = set()  # cached calls that could not join their chain
        self._unreported: list[tuple[nn.Module | None, str]] = []

    def name_of(self, module: nn.Module | None) -> str:
        name = self._names.get(id(module)) if module is not None else None
        if name is None:
            name = "scaled_dot_product_attention" if module is None else type(module).__name__
        return name

    def step(self, module: nn.Module | None, step: observe.Step) -> None:
        if step.name == "kernel":  # an attention call ran: its route must report it next
            self._unreported.append((module, step.note))

    def new_forward(self, *_: object) -> None:
        """Called before each forward of the model: a module called again within one forward
        (weights shared across layers, as in ALBERT) is then named ``name#1``, ``name#2``, …"""
        self._calls_this_forward.clear()

    def attention(self, module: nn.Module | None, call: observe.AttentionCall) -> None:
        if self._unreported:
            self._unreported.pop()
        name = self.name_of(module)
        repeat = self._calls_this_forward.get(name, 0)
        self._calls_this_forward[name] = repeat + 1
        name = f"{name}#{repeat}" if repeat else name
        bias = None if call.bias.is_empty else call.bias.map_tensors(lambda t: t.detach())
        amap = AttentionMap(
            q=call.q.detach(), k=call.k.detach(), lse=call.lse.detach(), scale=call.scale,
            bias=bias, sinks=call.sinks,
        )  # fmt: skip
        amap = self._chain(name, amap)
        self.calls.append((name, amap))
        self.pop(name, None)  # keep mapping order = order of the latest calls
        self[name] = amap

    def _chain(self, name: str, amap: AttentionMap) -> AttentionMap:
        """Join a call to its layer's previous calls when it is the next generation step."""
        cross = self.role(name) == "cross"
        chain = self._chains.get(name)
        if chain is not None and (self._continuing or not cross) and chain.continues(amap):
            amap = chain.append(amap)
            continued = True
        else:
            if chain is not None and amap.q.shape[2] < amap.k.shape[2]:
                self._unjoined.add(name)  # a cached call that does not continue: warn at exit
            chain = self._chains[name] = StepChain(amap, cross=cross)
            amap, continued = chain.first, False
        if not cross:
            self._continuing = continued
        return amap

    def steps(self, name: str) -> list[AttentionMap]:
        """The maps of layer ``name``'s calls in its latest chain of generation steps (one map for
        a single forward)."""
        if name not in self._chains:
            raise KeyError(f"no attention recorded for {name!r}; recorded: {list(self)}")
        return self._chains[name].steps()

    def _join_steps(self) -> None:
        """After the block: a layer called across generation steps gets one map."""
        for name, chain in self._chains.items():
            if len(chain) > 1:
                self[name] = chain.joined()

    def role(self, name: str) -> str:
        """What layer ``name``'s queries and keys are (see :data:`ROLES`): ``"cross"`` for
        encoder–decoder attention (queries from the target, keys from the source), ``"encoder"``
        and ``"decoder"`` for the two stacks' self-attention, ``"self"`` in one-stack models."""
        parts = name.split(".")
        if any(part in _CROSS_NAMES for part in parts):
            return "cross"
        if not self._two_stacks:
            return "self"
        return "decoder" if "decoder" in parts else "encoder"

    def of_role(self, role: str) -> list[str]:
        """Names of the recorded layers with this role, in call order."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}; got {role!r}")
        return [name for name in self if self.role(name) == role]

    @property
    def nbytes(self) -> int:
        return sum(m.nbytes for m in self.values())


def _forward_starts(model: nn.Module) -> list[nn.Module]:
    """The modules where a forward of ``model`` starts: the model, or one of its Hugging Face
    sub-models (generate() runs the encoder on its own); an attnlab EncoderDecoder's generate()
    runs its stacks without its forward (``encode``, then ``decode`` once a step), so each
    stack's first layer starts one too."""
    from attnlab.inspection.hf import is_hf_model, pretrained_modules
    from attnlab.models.encoder_decoder import EncoderDecoder

    if is_hf_model(model):
        return pretrained_modules(model)
    if isinstance(model, EncoderDecoder):
        return [model, model.encoder.layers[0], model.decoder.layers[0]]
    return [model]


@contextlib.contextmanager
def capture(model: nn.Module) -> Iterator[Capture]:
    """Record every attention call made inside the block by ``model``'s attention layers."""
    from attnlab.inspection.hf import hf_support

    maps = Capture(model)
    handles = [m.register_forward_pre_hook(maps.new_forward) for m in _forward_starts(model)]
    try:
        with hf_support(model), observe.observing(maps):
            yield maps
    finally:
        for handle in handles:
            handle.remove()
    maps._join_steps()
    if maps._unjoined:
        warnings.warn(
            f"capture could not join the cached calls of {sorted(maps._unjoined)[:3]} to their "
            "earlier steps (beam search reorders the cache; a static cache keeps unfilled "
            "slots): their maps cover the steps since the last break; maps.steps(name) and "
            "maps.calls keep every call",
            stacklevel=3,
        )
    if maps._unreported:
        missed = ", ".join(f"{maps.name_of(m)} ({note})" for m, note in maps._unreported)
        raise ValueError(f"capture missed attention calls that did not report their maps: {missed}")
    if not maps.calls:
        warnings.warn(
            f"capture recorded no attention call from {type(model).__name__}: was the model run "
            "inside the block?",
            stacklevel=3,
        )
