"""Transformer layers. Each sublayer is wrapped as LayerNorm(x + Sublayer(x)) (post-norm, the
original Transformer and the notes) or x + Sublayer(LayerNorm(x)) (pre-norm, GPT-2 and most
modern models), chosen by ``BlockConfig.norm_first``.

Dimension legend: B batch, T target positions, S source positions, D model width.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from attnlab.nn.attention import MultiHeadAttention
from attnlab.nn.dropout import dropout
from attnlab.nn.feed_forward import ACTIVATIONS, FeedForward
from attnlab.nn.kv_cache import LayerKVCache

__all__ = ["BlockConfig", "DecoderLayer", "EncoderLayer"]


@dataclass(frozen=True)
class BlockConfig:
    d_model: int  # model width D
    n_heads: int  # attention heads H (D % H == 0)
    d_ff: int  # feed-forward hidden width
    dropout: float = 0.0  # on attention weights, sublayer outputs and the feed-forward hidden
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
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}; got {self.activation!r}"
            )


def _residual(
    x: Tensor, norm: nn.LayerNorm, sublayer: Callable[[Tensor], Tensor], drop: nn.Dropout,
    norm_first: bool,
) -> Tensor:  # fmt: skip
    if norm_first:
        return x + dropout(drop, sublayer(norm(x)))
    return norm(x + dropout(drop, sublayer(x)))


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each in a residual + LayerNorm wrapper."""

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.ff = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, dropout=c.dropout, bias=c.bias
        )
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, key_padding_mask: Tensor | None = None,
        causal: bool = False, kv_cache: LayerKVCache | None = None,
    ) -> Tensor:  # fmt: skip
        """x (B, T, D) → (B, T, D). Masks: True = may attend."""
        return self.forward_with_weights(
            x, mask=mask, key_padding_mask=key_padding_mask, causal=causal, kv_cache=kv_cache,
            need_weights=False,
        )[0]  # fmt: skip

    def forward_with_weights(
        self, x: Tensor, *, mask: Tensor | None = None, key_padding_mask: Tensor | None = None,
        causal: bool = False, kv_cache: LayerKVCache | None = None, need_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """Like ``forward``, also returning the self-attention weights (B, H, T, S) computed by
        the same attention call."""
        weights: list[Tensor | None] = []

        def attend(h: Tensor) -> Tensor:
            out, w = self.self_attn(
                h, mask=mask, key_padding_mask=key_padding_mask, causal=causal,
                kv_cache=kv_cache, need_weights=need_weights,
            )  # fmt: skip
            weights.append(w)
            return out

        x = _residual(x, self.norm1, attend, self.dropout, self.config.norm_first)
        x = _residual(x, self.norm2, self.ff, self.dropout, self.config.norm_first)
        return x, weights[0]


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder output, feed-forward."""

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.cross_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.ff = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, dropout=c.dropout, bias=c.bias
        )
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.norm3 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self, x: Tensor, memory: Tensor, *, tgt_padding_mask: Tensor | None = None,
        memory_padding_mask: Tensor | None = None, causal: bool = True,
        tgt_mask: Tensor | None = None, kv_cache: LayerKVCache | None = None,
    ) -> Tensor:  # fmt: skip
        """x (B, T, D), memory (B, S, D) → (B, T, D). Padding masks: True = real token."""

        def self_attend(h: Tensor) -> Tensor:
            out, _ = self.self_attn(
                h, mask=tgt_mask, key_padding_mask=tgt_padding_mask, causal=causal,
                kv_cache=kv_cache,
            )  # fmt: skip
            return out

        def cross_attend(h: Tensor) -> Tensor:
            out, _ = self.cross_attn(h, memory, key_padding_mask=memory_padding_mask)
            return out

        norm_first = self.config.norm_first
        x = _residual(x, self.norm1, self_attend, self.dropout, norm_first)
        x = _residual(x, self.norm2, cross_attend, self.dropout, norm_first)
        return _residual(x, self.norm3, self.ff, self.dropout, norm_first)
