"""GPT: a decoder-only Transformer language model (Radford et al., 2018/2019).

token + position embeddings → n_layers pre-norm blocks (causal self-attention + feed-forward)
→ final LayerNorm → output projection (tied to the token embedding by default).

Dimension legend: B batch, T positions, D model width, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.functional.linear import store_weights_transposed_
from attnlab.models.checks import check_ids
from attnlab.models.config import GPTConfig, ModelOutput
from attnlab.models.params import ParameterCount, count_parameters
from attnlab.nn.blocks import DecoderOnlyLayer, LayerOutput, hidden_of
from attnlab.nn.dropout import dropout
from attnlab.nn.kv_cache import KVCache
from attnlab.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

__all__ = ["GPT"]

INIT_STD = 0.02  # GPT-2's initialisation of linear and embedding weights


class GPT(nn.Module):
    """Decoder-only language model. ``layers[i]`` is a :class:`~attnlab.nn.blocks.DecoderOnlyLayer`
    and ``layers[i].self_attn`` an attnlab.MultiHeadAttention; hook points are named
    ``layers.{i}.hook_resid_pre``, ``layers.{i}.self_attn.hook_z``... (see :mod:`attnlab.hooks`)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        if c.positional == "learned":
            self.position = LearnedPositionalEmbedding(c.max_len, c.d_model)
        else:  # the fixed table has entries of RMS 1/√2: brought to the embeddings' init scale,
            # or it drowns the 0.02-std token embeddings 35:1. Measured on the long-range recall
            # task (d = 8, 400 steps, lr 2e-3): at chance with the raw table, solved by step 100
            # with this scale.
            self.position = SinusoidalPositionalEncoding(
                c.max_len, c.d_model, scale=INIT_STD * 2**0.5
            )
        self.dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(DecoderOnlyLayer(c.block()) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(_init_weights)
        store_weights_transposed_(self.layers)  # same values; faster token-by-token decoding
        if c.tie_weights:
            self.lm_head.weight = self.token_embedding.weight

    def forward(
        self, input_ids: Tensor, targets: Tensor | None = None, *, kv_cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> ModelOutput:  # fmt: skip
        """input_ids (B, T) → logits (B, T, V); with targets (B, T), the mean cross-entropy
        (ignore_index −100). With ``kv_cache``, input_ids are the next positions after the
        cached ones. ``need_weights`` fills ``attentions``: per layer (B, H, T, T_cached + T)."""
        offset = kv_cache.length if kv_cache is not None else 0
        check_ids("input_ids", input_ids, self.config.vocab_size, self.config.max_len, offset)
        T = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.position(T, offset)  # (B, T, D)
        x = dropout(self.dropout, x)
        outputs: list[LayerOutput] = []  # with need_weights: each layer's weights
        for i, layer in enumerate(self.layers):
            x = hidden_of(layer(
                x, causal=self.config.causal, need_weights=need_weights,
                kv_cache=kv_cache[i] if kv_cache is not None else None,
            ), outputs, need_weights)  # fmt: skip
        attentions = [o.attention for o in outputs]
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return ModelOutput(logits, loss, attentions=tuple(attentions) if need_weights else None)

    def new_kv_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        c = self.config
        ref = self.token_embedding.weight
        return KVCache(
            c.n_layers, batch, c.n_heads, max_len or c.max_len, c.d_model // c.n_heads,
            dtype=ref.dtype, device=ref.device,
        )  # fmt: skip

    @torch.no_grad()
    def generate(
        self, prompt_ids: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
        top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        """Extend prompt_ids (B, T) by max_new_tokens → (B, T + new). temperature 0 is greedy.
        With ``use_cache`` every step feeds only the newest token; keys and values of earlier
        positions come from the KV cache (identical results, far less compute). A model built
        with ``causal=False`` always recomputes (its cached keys would differ)."""
        from attnlab.models.sampling import next_token

        check_ids("prompt_ids", prompt_ids, self.config.vocab_size, self.config.max_len)
        if not self.config.causal:
            # Without the causal mask a cached key would be stale: it was computed before the
            # later tokens existed. Recompute every step: each token is predicted from its
            # prefix, exactly as the model scores a prefix.
            use_cache = False
        total = prompt_ids.shape[1] + max_new_tokens
        if max_new_tokens < 0 or total > self.config.max_len:
            raise ValueError(
                f"prompt ({prompt_ids.shape[1]}) + max_new_tokens ({max_new_tokens}) = {total} "
                f"must lie within max_len={self.config.max_len}"
            )
        ids = prompt_ids
        cache = self.new_kv_cache(prompt_ids.shape[0], total) if use_cache else None
        feed = ids
        for _ in range(max_new_tokens):
            logits = self(feed, kv_cache=cache).logits[:, -1]  # (B, V)
            token = next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
            ids = torch.cat((ids, token), dim=1)
            feed = token if use_cache else ids
        return ids

    def num_parameters(self) -> ParameterCount:
        return count_parameters(self)

    @classmethod
    def from_hf(cls, model: nn.Module) -> GPT:
        """Load a Hugging Face ``GPT2LMHeadModel`` (see :mod:`attnlab.models.convert_gpt2`)."""
        from attnlab.models.convert_gpt2 import gpt_from_hf

        return gpt_from_hf(model)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=INIT_STD)
