"""Where one layer's computation lives in a real model, and what its real forward produced.

An :class:`Anatomy` names the model's own modules for each step of one layer (the projections
W_Q, W_K, W_V, W_O, the LayerNorms, the feed-forward) and runs the model's real forward once with
forward hooks on them, keeping what they produced: the embeddings' parts, the layer's input, the
Q, K, V projections and the layer's output (the model's own hidden state). The walk-through
(:mod:`attnlab.explain.walk`) then recomputes the attention step by step from these Q, K, V and
calls the same modules for W_O, the norms and the feed-forward.

Two architectures are supported, each by one function:

* BERT-family encoders from Hugging Face (``BertModel``; the bundled all-MiniLM-L6-v2 is one):
  post-norm, absolute learned positions plus token types, no causal mask;
* attnlab :class:`~attnlab.models.gpt.GPT`: pre-norm, causal, sinusoidal or learned positions.

Dimension legend: T positions, D model width, H heads, d_h = D / H, d_ff feed-forward width.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["SUPPORTED", "Anatomy", "Limits", "anatomy_of", "limits_of"]

SUPPORTED = (
    "the bundled all-MiniLM-L6-v2 (default), BERT-family Hugging Face encoder folders "
    "(BertModel) and attnlab GPT checkpoints"
)


@dataclass
class Anatomy:
    """One layer of a real model: its modules and what the real forward gave them."""

    kind: str  # "bert" or "gpt"
    description: str  # one line for the page: architecture, norm order, positions
    n_layers: int
    n_heads: int  # H
    d_model: int  # D
    d_ff: int
    norm_first: bool  # True: x + f(LN(x)) (pre-norm, GPT); False: LN(x + f(x)) (BERT)
    causal: bool  # the model's own mask rule
    positional: str  # "learned", "sinusoidal"
    parts: dict[str, Tensor]  # embedding parts and the hooked activations, (T, D) each
    hidden_state: Tensor  # (T, D): the model's own output of the layer (its hidden state)
    out_proj: Callable[[Tensor], Tensor]  # W_O (the model's module)
    norm_attn: Callable[[Tensor], Tensor]  # LayerNorm around the attention sublayer
    norm_ff: Callable[[Tensor], Tensor]  # LayerNorm around the feed-forward sublayer
    ff_hidden: Callable[[Tensor], Tensor]  # act(x·W_1 + b_1): (T, D) → (T, d_ff)
    ff_out: Callable[[Tensor], Tensor]  # h·W_2 + b_2: (T, d_ff) → (T, D)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def position_scale(self) -> float | None:
        """The factor s of a fixed sin/cos table s·PE, read from the model's own table: PE(0, 1)
        = cos(0) = 1 (attnlab's GPT: 0.02·√2). None for a learned table."""
        if self.positional != "sinusoidal":
            return None
        return float(self.parts["position"][0, 1])


@dataclass(frozen=True)
class Limits:
    """What a model allows, read from its config before it runs."""

    kind: str  # "bert" or "gpt"
    n_layers: int
    n_heads: int
    max_positions: int  # the longest input its position table covers


def limits_of(model: nn.Module) -> Limits:
    """The model's kind, layers, heads and position limit. Raises a ``ValueError`` naming what
    is supported for any other model, and for a BERT whose positions are not absolute (relative
    position scores are not among the walk's steps)."""
    from attnlab.models.gpt import GPT

    if isinstance(model, GPT):
        c = model.config
        return Limits("gpt", c.n_layers, c.n_heads, c.max_len)
    if _is_bert(model):
        c = model.config
        kind = getattr(c, "position_embedding_type", "absolute")
        if kind != "absolute":
            raise ValueError(f"explain walks BERT models with absolute positions; this one has "
                             f"position_embedding_type={kind!r}")  # fmt: skip
        return Limits("bert", c.num_hidden_layers, c.num_attention_heads,
                      c.max_position_embeddings)  # fmt: skip
    raise ValueError(
        f"attnlab explain does not know the layout of {type(model).__name__}; it supports "
        f"{SUPPORTED}"
    )


def anatomy_of(model: nn.Module, input_ids: Tensor, layer: int, **inputs: Tensor) -> Anatomy:
    """Run ``model`` on ``input_ids`` (1, T) with hooks on layer ``layer``'s modules (checked
    against :func:`limits_of`, which also refuses models explain does not know)."""
    limits = limits_of(model)
    if not 0 <= layer < limits.n_layers:
        raise ValueError(f"layer must lie in [0, {limits.n_layers - 1}] for this model; "
                         f"got {layer}")  # fmt: skip
    if limits.kind == "gpt":
        return _gpt(model, input_ids, layer)
    return _bert(model, input_ids, layer, **inputs)


def _is_bert(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == "bert" and hasattr(model, "embeddings") \
        and hasattr(model, "encoder")  # fmt: skip


class _Recorder:
    """Forward hooks that keep one output (or input) per name, removed on exit."""

    def __init__(self) -> None:
        self.values: dict[str, Tensor] = {}
        self._handles: list = []

    def output(self, name: str, module: nn.Module) -> None:
        def hook(_m, _args, out):
            self.values[name] = (out[0] if isinstance(out, tuple) else out).detach()[0]

        self._handles.append(module.register_forward_hook(hook))

    def input(self, name: str, module: nn.Module) -> None:
        def hook(_m, args, kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            self.values[name] = x.detach()[0]

        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()


def _gpt(model: nn.Module, input_ids: Tensor, layer: int) -> Anatomy:
    c = model.config
    block = model.layers[layer]
    attn, ff = block.self_attn, block.ff
    with _Recorder() as rec, torch.no_grad():
        rec.output("token", model.token_embedding)
        rec.input("x", block)
        rec.output("norm1", block.norm1)
        for name in ("q", "k", "v"):  # hooks make the fused projection step aside (hooks.py)
            rec.output(name, getattr(attn, f"{name}_proj"))
        rec.output("layer_out", block)
        model(input_ids)
    parts = rec.values
    parts["position"] = model.position(input_ids.shape[1]).detach()  # (T, D): the table's rows
    parts["embeddings"] = parts["token"] + parts["position"]
    from attnlab.nn.feed_forward import ACTIVATIONS

    act = ACTIVATIONS[ff.activation]
    positions = "sinusoidal (fixed)" if c.positional == "sinusoidal" else "learned"
    return Anatomy(
        kind="gpt",
        description=f"attnlab GPT: {c.n_layers} layers × {c.n_heads} heads, D = {c.d_model}, "
        f"pre-norm x + f(LayerNorm(x)), {positions} positions, "
        f"{'causal' if c.causal else 'no causal mask'}",
        n_layers=c.n_layers, n_heads=c.n_heads, d_model=c.d_model, d_ff=ff.linear1.out_features,
        norm_first=True, causal=c.causal, positional=c.positional, parts=parts,
        hidden_state=parts.pop("layer_out"), out_proj=attn.out_proj, norm_attn=block.norm1,
        norm_ff=block.norm2, ff_hidden=lambda x: act(ff.linear1(x)), ff_out=ff.linear2,
    )  # fmt: skip


def _bert(model: nn.Module, input_ids: Tensor, layer: int, **inputs: Tensor) -> Anatomy:
    c = model.config
    emb = model.embeddings
    block = model.encoder.layer[layer]
    self_attn = block.attention.self
    with _Recorder() as rec, torch.no_grad():
        rec.output("token", emb.word_embeddings)
        rec.output("position", emb.position_embeddings)
        rec.output("token_type", emb.token_type_embeddings)
        rec.output("embeddings_norm", emb.LayerNorm)
        rec.input("x", block)
        for name, module in (("q", self_attn.query), ("k", self_attn.key), ("v", self_attn.value)):
            rec.output(name, module)
        out = model(input_ids=input_ids, output_hidden_states=True, **inputs)
    parts = rec.values
    parts["embeddings"] = parts["token"] + parts["token_type"] + parts["position"]
    return Anatomy(
        kind="bert",
        description=f"{type(model).__name__} ({c.model_type}): {c.num_hidden_layers} layers × "
        f"{c.num_attention_heads} heads, D = {c.hidden_size}, post-norm LayerNorm(x + f(x)), "
        "learned absolute positions + token types, no causal mask",
        n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads, d_model=c.hidden_size,
        d_ff=c.intermediate_size, norm_first=False, causal=False, positional="learned",
        parts=parts, hidden_state=out.hidden_states[layer + 1][0].detach(),
        out_proj=block.attention.output.dense, norm_attn=block.attention.output.LayerNorm,
        norm_ff=block.output.LayerNorm, ff_hidden=block.intermediate, ff_out=block.output.dense,
    )  # fmt: skip
