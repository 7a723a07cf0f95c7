"""EncoderDecoder: the original Transformer (Vaswani et al., 2017) for translation.

source ids → embedding·√D + sinusoidal PE → encoder layers → memory (B, S, D)
target ids → embedding·√D + sinusoidal PE → decoder layers (causal self-attention,
cross-attention to memory, feed-forward) → output projection (tied to the target embedding).

Dimension legend: B batch, S source positions, T target positions, D model width, V vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.functional.linear import store_weights_transposed_
from attnlab.models.checks import check_ids
from attnlab.models.config import EncoderDecoderConfig, ModelOutput
from attnlab.models.params import ParameterCount, count_parameters
from attnlab.nn.blocks import DecoderLayer, EncoderLayer, LayerOutput, hidden_of
from attnlab.nn.kv_cache import KVCache
from attnlab.nn.positional import SinusoidalPositionalEncoding

__all__ = ["EncoderDecoder"]


class _Stack(nn.Module):
    """Embedding + layers (+ a final LayerNorm for pre-norm stacks)."""

    def __init__(self, config: EncoderDecoderConfig, vocab: int, n_layers: int, layer_cls: type):
        super().__init__()
        self.embedding = nn.Embedding(vocab, config.d_model)
        self.position = SinusoidalPositionalEncoding(config.max_len, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(layer_cls(config.block()) for _ in range(n_layers))
        self.norm = nn.LayerNorm(config.d_model) if config.norm_first else nn.Identity()
        self.scale = math.sqrt(config.d_model)

    def embed(self, ids: Tensor, offset: int = 0) -> Tensor:  # (B, T) → (B, T, D)
        x = self.embedding(ids) * self.scale + self.position(ids.shape[1], offset)
        return self.dropout(x)


class EncoderDecoder(nn.Module):
    """``encoder.layers[i].self_attn``, ``decoder.layers[i].self_attn`` and
    ``decoder.layers[i].cross_attn`` are attnlab.MultiHeadAttention modules; their hook points
    are named after them (``decoder.layers.0.cross_attn.hook_pattern``, see
    :mod:`attnlab.hooks`)."""

    def __init__(self, config: EncoderDecoderConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.encoder = _Stack(c, c.src_vocab_size, c.n_encoder_layers, EncoderLayer)
        self.decoder = _Stack(c, c.tgt_vocab_size, c.n_decoder_layers, DecoderLayer)
        self.output = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if c.tie_weights:
            self.output.weight = self.decoder.embedding.weight
        store_weights_transposed_(self.decoder.layers)  # same values; faster decoding

    def encode(self, src_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """src_ids (B, S) → memory (B, S, D). attention_mask (B, S): True/1 = real token."""
        return self._encode(src_ids, attention_mask, need_weights=False)[0]

    def _encode(
        self, src_ids: Tensor, attention_mask: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, tuple[Tensor, ...] | None]:
        c = self.config
        check_ids("src_ids", src_ids, c.src_vocab_size, c.max_len)
        x = self.encoder.embed(src_ids)
        outputs: list[LayerOutput] = []
        for layer in self.encoder.layers:
            x = hidden_of(layer(x, attention_mask=attention_mask, need_weights=need_weights),
                          outputs, need_weights)  # fmt: skip
        attentions = tuple(o.attention for o in outputs)
        return self.encoder.norm(x), attentions if need_weights else None

    def decode(
        self, tgt_ids: Tensor, memory: Tensor, *, attention_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None, kv_cache: KVCache | None = None,
    ) -> Tensor:  # fmt: skip
        """tgt_ids (B, T), memory (B, S, D) → logits (B, T, V). ``attention_mask`` (B, S) marks
        real source tokens, ``decoder_attention_mask`` (B, T) real target tokens."""
        return self._decode(
            tgt_ids, memory, attention_mask, decoder_attention_mask, kv_cache, need_weights=False
        )[0]

    def _decode(
        self, tgt_ids: Tensor, memory: Tensor, attention_mask: Tensor | None,
        decoder_attention_mask: Tensor | None, kv_cache: KVCache | None, need_weights: bool,
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:  # fmt: skip
        c = self.config
        offset = kv_cache.length if kv_cache is not None else 0
        check_ids("tgt_ids", tgt_ids, c.tgt_vocab_size, c.max_len, offset)
        if tgt_ids.shape[0] != memory.shape[0]:
            raise ValueError(
                "source and target batch sizes must match: source has "
                f"{memory.shape[0]}, target has {tgt_ids.shape[0]}"
            )
        x = self.decoder.embed(tgt_ids, offset)
        outputs: list[LayerOutput] = []
        for i, layer in enumerate(self.decoder.layers):
            x = hidden_of(layer(
                x, memory, attention_mask=decoder_attention_mask,
                encoder_attention_mask=attention_mask, need_weights=need_weights,
                kv_cache=kv_cache[i] if kv_cache is not None else None,
            ), outputs, need_weights)  # fmt: skip
        logits = self.output(self.decoder.norm(x))  # (B, T, V)
        if not need_weights:
            return logits, None, None
        self_attentions = tuple(o.attention for o in outputs)
        return logits, self_attentions, tuple(o.cross_attention for o in outputs)

    def forward(
        self, src_ids: Tensor, tgt_ids: Tensor, *, attention_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None, targets: Tensor | None = None,
        need_weights: bool = False,
    ) -> ModelOutput:  # fmt: skip
        """src_ids (B, S), tgt_ids (B, T) → logits (B, T, V). ``attention_mask`` (B, S) and
        ``decoder_attention_mask`` (B, T): True/1 = real token (Hugging Face's names).
        ``need_weights`` fills ``encoder_attentions``, ``decoder_attentions`` and
        ``cross_attentions``, one (B, H, ·, ·) tensor per layer."""
        if src_ids.dim() == 2 and tgt_ids.dim() == 2 and src_ids.shape[0] != tgt_ids.shape[0]:
            raise ValueError(
                f"source and target batch sizes must match: src_ids has {src_ids.shape[0]}, "
                f"tgt_ids has {tgt_ids.shape[0]}"
            )
        memory, encoder_attentions = self._encode(src_ids, attention_mask, need_weights)
        logits, decoder_attentions, cross_attentions = self._decode(
            tgt_ids, memory, attention_mask, decoder_attention_mask, None, need_weights
        )
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return ModelOutput(
            logits, loss, encoder_attentions=encoder_attentions,
            decoder_attentions=decoder_attentions, cross_attentions=cross_attentions,
        )  # fmt: skip

    @torch.no_grad()
    def generate(
        self, src_ids: Tensor, max_new_tokens: int, bos_id: int, eos_id: int,
        attention_mask: Tensor | None = None,
    ) -> Tensor:  # fmt: skip
        """Greedy decoding with a KV cache for the decoder's self-attention → (B, 1 + new),
        starting with bos_id; rows stop growing (pad with eos_id) once they emit eos_id."""
        c = self.config
        if max_new_tokens + 1 > c.max_len:
            raise ValueError(f"max_new_tokens + 1 must be <= max_len={c.max_len}; got "
                             f"{max_new_tokens + 1}")  # fmt: skip
        memory = self.encode(src_ids, attention_mask)
        B = src_ids.shape[0]
        ref = memory
        cache = KVCache(
            c.n_decoder_layers, B, c.n_heads, max_new_tokens + 1, c.d_model // c.n_heads,
            dtype=ref.dtype, device=ref.device,
        )  # fmt: skip
        ids = torch.full((B, 1), bos_id, dtype=torch.long, device=src_ids.device)
        done = torch.zeros(B, dtype=torch.bool, device=src_ids.device)
        feed = ids
        for _ in range(max_new_tokens):
            logits = self.decode(feed, memory, attention_mask=attention_mask, kv_cache=cache)
            token = logits[:, -1].argmax(-1)  # (B,)
            token = torch.where(done, torch.full_like(token, eos_id), token)
            ids = torch.cat((ids, token[:, None]), dim=1)
            done |= token == eos_id
            if bool(done.all()):
                break
            feed = token[:, None]
        return ids

    def num_parameters(self) -> ParameterCount:
        return count_parameters(self)
