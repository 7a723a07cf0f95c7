"""Transformer layers. Each sublayer is wrapped as LayerNorm(x + Sublayer(x)) (post-norm, the
original Transformer and the notes) or x + Sublayer(LayerNorm(x)) (pre-norm, GPT-2 and most
modern models), chosen by ``BlockConfig.norm_first``.

Three layers: :class:`EncoderLayer` (self-attention, every position sees every other),
:class:`DecoderOnlyLayer` (GPT's block: causal self-attention) and :class:`DecoderLayer`
(causal self-attention, cross-attention to the encoder output). ``forward`` returns the hidden
state (B, T, D), or a :class:`LayerOutput` with the attention weights when ``need_weights``.

Hook points (see :mod:`attnlab.hooks`; TransformerLens names), all (B, T, D):

* ``hook_resid_pre``: the layer's input;
* ``hook_attn_out``: the self-attention output (after W_O, before dropout and the residual);
* ``hook_resid_mid``: the residual stream after the self-attention sublayer;
* decoder layers only: ``hook_cross_attn_out`` (cross-attention output) and
  ``hook_resid_mid_cross`` (the stream after the cross-attention sublayer);
* ``hook_mlp_out``: the feed-forward output;
* ``hook_resid_post``: the layer's output.

In post-norm layers the residual-stream hooks see the stream after the sublayer's LayerNorm
(what the next sublayer reads). Replacements returned by hooks take effect.

Dimension legend: B batch, T target positions, S source positions, D model width, H heads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

from attnlab.hooks import HookPoint, call_hook, hooks_below
from attnlab.nn.attention import MultiHeadAttention
from attnlab.nn.dropout import dropout_add
from attnlab.nn.feed_forward import ACTIVATIONS, FeedForward
from attnlab.nn.kv_cache import LayerKVCache

__all__ = [
    "BlockConfig",
    "DecoderLayer",
    "DecoderOnlyLayer",
    "EncoderLayer",
    "LayerOutput",
    "hidden_of",
]


@dataclass(frozen=True)
class BlockConfig:
    d_model: int  # model width D
    n_heads: int  # attention heads H (D % H == 0)
    d_ff: int  # feed-forward hidden width
    dropout: float = 0.0  # on attention weights and sublayer outputs (the paper's, GPT-2's)
    # inside the feed-forward, after the activation: PyTorch's nn.TransformerEncoderLayer has
    # it, the paper and GPT-2 do not (and it was a quarter of a training step's dropout work)
    ff_dropout: float = 0.0
    activation: str = "gelu"  # "relu", "gelu" (erf) or "gelu_tanh"
    norm_first: bool = False  # False: LayerNorm(x + f(x)) (post-norm); True: x + f(LayerNorm(x))
    layer_norm_eps: float = 1e-5  # LayerNorm epsilon (BERT uses 1e-12)
    bias: bool = True  # biases in attention and feed-forward projections

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads: {self.d_model} % {self.n_heads} = "
                f"{self.d_model % self.n_heads}"
            )
        for name in ("dropout", "ff_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}; got {self.activation!r}"
            )


class LayerOutput(NamedTuple):
    """What a layer returns when called with ``need_weights=True``."""

    hidden_state: Tensor  # (B, T, D)
    attention: Tensor | None  # self-attention weights (B, H, T, S)
    cross_attention: Tensor | None = None  # decoder layers: (B, H, T, S_source)


def hidden_of(out: Tensor | LayerOutput, outputs: list[LayerOutput], need_weights: bool) -> Tensor:
    """The hidden state (B, T, D) of a layer's output; with ``need_weights`` the layer's
    :class:`LayerOutput` is also kept in ``outputs``, so a model collects every layer's weights
    in one list (and a layer that did not return them is an error, not a shifted list)."""
    if not need_weights:
        return out
    if not isinstance(out, LayerOutput):
        raise ValueError(
            f"need_weights=True, but a layer returned {type(out).__name__} instead of a "
            "LayerOutput (did a forward hook on the layer replace its output?)"
        )
    outputs.append(out)
    return out.hidden_state


def _residual(
    x: Tensor, norm: nn.LayerNorm, sublayer: Callable[[Tensor], Tensor], drop: nn.Dropout,
    norm_first: bool, hook_out: HookPoint | None,
) -> Tensor:  # fmt: skip
    """One sublayer with its residual connection; ``hook_out`` (None: no hook anywhere in the
    layer) sees the sublayer's output."""
    out = sublayer(norm(x) if norm_first else x)
    if hook_out is not None:
        out = call_hook(hook_out, out)
    return dropout_add(x, drop, out) if norm_first else norm(dropout_add(x, drop, out))


class _SelfAttentionLayer(nn.Module):
    """Self-attention then feed-forward, each in a residual + LayerNorm wrapper. The parameter
    names (``self_attn``, ``ff``, ``norm1``, ``norm2``) are those of saved checkpoints."""

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.ff = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, dropout=c.ff_dropout, bias=c.bias
        )
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)
        self.hook_resid_pre = HookPoint()  # (B, T, D)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def _run(
        self, x: Tensor, mask: Tensor | None, attention_mask: Tensor | None, causal: bool,
        kv_cache: LayerKVCache | None, need_weights: bool,
    ) -> Tensor | LayerOutput:  # fmt: skip
        weights: list[Tensor | None] = []

        def attend(h: Tensor) -> Tensor:
            out, w = self.self_attn(
                h, mask=mask, attention_mask=attention_mask, causal=causal, kv_cache=kv_cache,
                need_weights=need_weights,
            )  # fmt: skip
            weights.append(w)
            return out

        norm_first = self.config.norm_first
        if not hooks_below(self):  # one check for the layer's hook points: none attached
            x = _residual(x, self.norm1, attend, self.dropout, norm_first, None)
            x = _residual(x, self.norm2, self.ff, self.dropout, norm_first, None)
            return LayerOutput(x, weights[0]) if need_weights else x
        x = call_hook(self.hook_resid_pre, x)
        x = _residual(x, self.norm1, attend, self.dropout, norm_first, self.hook_attn_out)
        x = call_hook(self.hook_resid_mid, x)
        x = _residual(x, self.norm2, self.ff, self.dropout, norm_first, self.hook_mlp_out)
        x = call_hook(self.hook_resid_post, x)
        return LayerOutput(x, weights[0]) if need_weights else x


class EncoderLayer(_SelfAttentionLayer):
    """Encoder layer: every position attends to every (real) position, then feed-forward."""

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, attention_mask: Tensor | None = None,
        causal: bool = False, kv_cache: LayerKVCache | None = None, need_weights: bool = False,
    ) -> Tensor | LayerOutput:  # fmt: skip
        """x (B, T, D) → (B, T, D), or ``LayerOutput(x, weights (B, H, T, S))`` with
        ``need_weights``. ``mask`` (…, T, S): True = may attend; ``attention_mask`` (B, S):
        True/1 = real token."""
        return self._run(x, mask, attention_mask, causal, kv_cache, need_weights)


class DecoderOnlyLayer(_SelfAttentionLayer):
    """A decoder-only (GPT) block: causal self-attention, then feed-forward. It has no
    cross-attention; its parameters are named as an :class:`EncoderLayer`'s."""

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, attention_mask: Tensor | None = None,
        causal: bool = True, kv_cache: LayerKVCache | None = None, need_weights: bool = False,
    ) -> Tensor | LayerOutput:  # fmt: skip
        """x (B, T, D) → (B, T, D), or ``LayerOutput(x, weights (B, H, T, S))`` with
        ``need_weights``. ``causal`` is end-aligned: with ``kv_cache`` the new positions see
        every cached one."""
        return self._run(x, mask, attention_mask, causal, kv_cache, need_weights)


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, feed-forward."""

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.cross_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.ff = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, dropout=c.ff_dropout, bias=c.bias
        )
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm3 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)
        self.hook_resid_pre = HookPoint()  # (B, T, D)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_cross_attn_out = HookPoint()
        self.hook_resid_mid_cross = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self, x: Tensor, memory: Tensor, *, mask: Tensor | None = None,
        attention_mask: Tensor | None = None, encoder_attention_mask: Tensor | None = None,
        causal: bool = True, kv_cache: LayerKVCache | None = None, need_weights: bool = False,
    ) -> Tensor | LayerOutput:  # fmt: skip
        """x (B, T, D), memory (B, S, D) → (B, T, D), or with ``need_weights``
        ``LayerOutput(x, self-attention (B, H, T, T), cross-attention (B, H, T, S))``.

        ``mask`` (…, T, T) masks the self-attention (True = may attend); ``attention_mask``
        (B, T) marks real target tokens, ``encoder_attention_mask`` (B, S) real source tokens
        (True/1 = real, Hugging Face's names)."""
        weights: dict[str, Tensor | None] = {}

        def self_attend(h: Tensor) -> Tensor:
            out, weights["self"] = self.self_attn(
                h, mask=mask, attention_mask=attention_mask, causal=causal, kv_cache=kv_cache,
                need_weights=need_weights,
            )  # fmt: skip
            return out

        def cross_attend(h: Tensor) -> Tensor:
            out, weights["cross"] = self.cross_attn(
                h, memory, attention_mask=encoder_attention_mask, need_weights=need_weights
            )
            return out

        norm_first = self.config.norm_first
        x = call_hook(self.hook_resid_pre, x)
        x = _residual(x, self.norm1, self_attend, self.dropout, norm_first, self.hook_attn_out)
        x = call_hook(self.hook_resid_mid, x)
        x = _residual(
            x, self.norm2, cross_attend, self.dropout, norm_first, self.hook_cross_attn_out
        )
        x = call_hook(self.hook_resid_mid_cross, x)
        x = _residual(x, self.norm3, self.ff, self.dropout, norm_first, self.hook_mlp_out)
        x = call_hook(self.hook_resid_post, x)
        return LayerOutput(x, weights["self"], weights["cross"]) if need_weights else x
