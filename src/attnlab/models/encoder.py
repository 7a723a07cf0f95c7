"""Encoder: a BERT-style stack of self-attention layers (Devlin et al., 2019).

token + position (+ token type) embeddings → LayerNorm → n_layers encoder layers (post-norm by
default, as BERT). Every position sees every other (no causal mask); padding is masked.

Dimension legend: B batch, T positions, D model width.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnlab.models.checks import check_ids
from attnlab.models.config import EncoderConfig
from attnlab.models.params import ParameterCount, count_parameters
from attnlab.nn.blocks import EncoderLayer, hidden_of
from attnlab.nn.positional import LearnedPositionalEmbedding

__all__ = ["Encoder", "EncoderOutput"]


class EncoderOutput(NamedTuple):
    last_hidden_state: Tensor  # (B, T, D)
    hidden_states: tuple[Tensor, ...]  # embeddings output, then each layer's: n_layers + 1
    attentions: tuple[Tensor, ...] | None  # per layer (B, H, T, T) with need_weights


class Encoder(nn.Module):
    """``layers[i].self_attn`` is an attnlab.MultiHeadAttention."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_token_id)
        self.position = LearnedPositionalEmbedding(c.max_len, c.d_model)
        self.token_type_embedding = (
            nn.Embedding(c.type_vocab_size, c.d_model) if c.type_vocab_size else None
        )
        self.embed_norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(EncoderLayer(c.block()) for _ in range(c.n_layers))

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None, *, need_weights: bool = False,
    ) -> EncoderOutput:  # fmt: skip
        """input_ids (B, T); attention_mask (B, T) with 1/True = real token (Hugging Face's).
        ``need_weights`` fills ``attentions`` (Hugging Face's ``output_attentions``)."""
        c = self.config
        check_ids("input_ids", input_ids, c.vocab_size, c.max_len)
        B, T = input_ids.shape
        if attention_mask is not None and tuple(attention_mask.shape) != (B, T):
            raise ValueError(
                f"attention_mask must have the shape of input_ids {(B, T)}; got "
                f"{tuple(attention_mask.shape)}"
            )
        x = self.token_embedding(input_ids) + self.position(T)  # (B, T, D)
        if self.token_type_embedding is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            check_ids("token_type_ids", token_type_ids, c.type_vocab_size, c.max_len)
            x = x + self.token_type_embedding(token_type_ids)
        x = self.dropout(self.embed_norm(x))
        hidden, outputs = [x], []
        for layer in self.layers:
            x = hidden_of(layer(x, attention_mask=attention_mask, need_weights=need_weights),
                          outputs, need_weights)  # fmt: skip
            hidden.append(x)
        attentions = tuple(o.attention for o in outputs)
        return EncoderOutput(x, tuple(hidden), attentions if need_weights else None)

    def num_parameters(self) -> ParameterCount:
        return count_parameters(self)

    @classmethod
    def from_hf(cls, model: nn.Module) -> Encoder:
        """Load a Hugging Face ``BertModel`` (see :mod:`attnlab.models.convert_bert`)."""
        from attnlab.models.convert_bert import encoder_from_hf

        return encoder_from_hf(model)
