"""Hugging Face GPT-2 → attnlab GPT. Parameter by parameter, no other transformation.

GPT-2 stores its projections as ``Conv1D`` with weights (in, out), i.e. the transpose of an
``nn.Linear`` weight; ``c_attn`` packs W_Q, W_K, W_V side by side.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT

__all__ = ["gpt_from_hf"]

_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
                "relu": "relu"}  # fmt: skip


def gpt_from_hf(model: nn.Module) -> GPT:
    if type(model).__name__ != "GPT2LMHeadModel":
        raise ValueError(f"GPT.from_hf expects a GPT2LMHeadModel; got {type(model).__name__}")
    hf_config = model.config
    if hf_config.activation_function not in _ACTIVATIONS:
        raise ValueError(
            f"unsupported GPT-2 activation_function {hf_config.activation_function!r}; "
            f"supported: {sorted(_ACTIVATIONS)}"
        )
    config = GPTConfig(
        vocab_size=hf_config.vocab_size, max_len=hf_config.n_positions,
        n_layers=hf_config.n_layer, n_heads=hf_config.n_head, d_model=hf_config.n_embd,
        d_ff=hf_config.n_inner or 4 * hf_config.n_embd, dropout=0.0, bias=True,
        tie_weights=model.lm_head.weight is model.transformer.wte.weight,
        activation=_ACTIVATIONS[hf_config.activation_function],
        layer_norm_eps=hf_config.layer_norm_epsilon,
    )  # fmt: skip
    ours = GPT(config)
    hf = model.transformer
    with torch.no_grad():
        ours.token_embedding.weight.copy_(hf.wte.weight)
        ours.position.weight.copy_(hf.wpe.weight)
        for layer, block in zip(ours.layers, hf.h, strict=True):
            _copy_norm(layer.norm1, block.ln_1)
            _copy_norm(layer.norm2, block.ln_2)
            w_q, w_k, w_v = block.attn.c_attn.weight.T.chunk(3)  # each (D, D)
            b_q, b_k, b_v = block.attn.c_attn.bias.chunk(3)
            attn = layer.self_attn
            for proj, w, b in ((attn.q_proj, w_q, b_q), (attn.k_proj, w_k, b_k),
                               (attn.v_proj, w_v, b_v)):  # fmt: skip
                proj.weight.copy_(w)
                proj.bias.copy_(b)
            _copy_conv1d(attn.out_proj, block.attn.c_proj)
            _copy_conv1d(layer.ff.linear1, block.mlp.c_fc)
            _copy_conv1d(layer.ff.linear2, block.mlp.c_proj)
        _copy_norm(ours.norm, hf.ln_f)
        if not config.tie_weights:
            ours.lm_head.weight.copy_(model.lm_head.weight)
    return ours.eval()


def _copy_norm(ours: nn.LayerNorm, theirs: nn.Module) -> None:
    ours.weight.copy_(theirs.weight)
    ours.bias.copy_(theirs.bias)


def _copy_conv1d(ours: nn.Linear, theirs: nn.Module) -> None:
    ours.weight.copy_(theirs.weight.T)  # Conv1D (in, out) → Linear (out, in)
    ours.bias.copy_(theirs.bias)
