"""Hugging Face BERT (``BertModel``, e.g. all-MiniLM-L6-v2) → attnlab Encoder, parameter by
parameter. Names: HF ``encoder.layer.{i}.attention.self.query`` → ``layers.{i}.self_attn.q_proj``,
``attention.output.dense`` → ``out_proj``, ``attention.output.LayerNorm`` → ``norm1``,
``intermediate.dense`` → ``ff.linear1``, ``output.dense`` → ``ff.linear2``,
``output.LayerNorm`` → ``norm2``."""

from __future__ import annotations

import torch
from torch import nn

from attnlab.models.config import EncoderConfig
from attnlab.models.encoder import Encoder

__all__ = ["encoder_from_hf"]

_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh"}


def encoder_from_hf(model: nn.Module) -> Encoder:
    if type(model).__name__ != "BertModel":
        raise ValueError(f"Encoder.from_hf expects a BertModel; got {type(model).__name__}")
    h = model.config
    if h.hidden_act not in _ACTIVATIONS:
        raise ValueError(f"unsupported BERT hidden_act {h.hidden_act!r}")
    if getattr(h, "position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"only absolute position embeddings are supported; got {h.position_embedding_type!r}"
        )
    config = EncoderConfig(
        vocab_size=h.vocab_size, max_len=h.max_position_embeddings, n_layers=h.num_hidden_layers,
        n_heads=h.num_attention_heads, d_model=h.hidden_size, d_ff=h.intermediate_size,
        type_vocab_size=h.type_vocab_size, dropout=0.0, activation=_ACTIVATIONS[h.hidden_act],
        norm_first=False, layer_norm_eps=h.layer_norm_eps, pad_token_id=h.pad_token_id or 0,
    )  # fmt: skip
    ours = Encoder(config)
    emb = model.embeddings
    with torch.no_grad():
        ours.token_embedding.weight.copy_(emb.word_embeddings.weight)
        ours.position.weight.copy_(emb.position_embeddings.weight)
        ours.token_type_embedding.weight.copy_(emb.token_type_embeddings.weight)
        _copy(ours.embed_norm, emb.LayerNorm)
        for layer, block in zip(ours.layers, model.encoder.layer, strict=True):
            attn = block.attention
            _copy(layer.self_attn.q_proj, attn.self.query)
            _copy(layer.self_attn.k_proj, attn.self.key)
            _copy(layer.self_attn.v_proj, attn.self.value)
            _copy(layer.self_attn.out_proj, attn.output.dense)
            _copy(layer.norm1, attn.output.LayerNorm)
            _copy(layer.ff.linear1, block.intermediate.dense)
            _copy(layer.ff.linear2, block.output.dense)
            _copy(layer.norm2, block.output.LayerNorm)
    return ours.eval()


def _copy(ours: nn.Module, theirs: nn.Module) -> None:
    ours.weight.copy_(theirs.weight)
    ours.bias.copy_(theirs.bias)
