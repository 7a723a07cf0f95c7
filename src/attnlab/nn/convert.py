"""Weight conversion between :class:`attnlab.MultiHeadAttention` and
:class:`torch.nn.MultiheadAttention`, with no silent transformation: the same numbers move from
one set of named parameters to the other.

PyTorch packs W_Q, W_K, W_V into ``in_proj_weight`` (3D, D) when key and value sizes equal D,
and keeps ``q_proj_weight`` / ``k_proj_weight`` / ``v_proj_weight`` otherwise; biases are packed
into ``in_proj_bias`` (3D,) either way. Its ``bias_k`` / ``bias_v`` (``add_bias_kv``) and
``add_zero_attn`` have no attnlab equivalent and are refused.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.nn.attention import MultiHeadAttention

__all__ = ["mha_from_torch", "mha_to_torch"]


def mha_from_torch(m: nn.MultiheadAttention) -> MultiHeadAttention:
    if m.bias_k is not None or m.add_zero_attn:
        raise ValueError(
            "torch.nn.MultiheadAttention with add_bias_kv=True or add_zero_attn=True has no "
            "attnlab equivalent; got "
            f"add_bias_kv={m.bias_k is not None}, add_zero_attn={m.add_zero_attn}"
        )
    D = m.embed_dim
    has_bias = m.in_proj_bias is not None
    ref = m.out_proj.weight
    ours = MultiHeadAttention(
        D, m.num_heads, kdim=m.kdim, vdim=m.vdim, bias=has_bias, dropout=m.dropout,
        device=ref.device, dtype=ref.dtype,
    )  # fmt: skip
    with torch.no_grad():
        if m._qkv_same_embed_dim:
            w_q, w_k, w_v = m.in_proj_weight.chunk(3)  # each (D, D)
        else:
            w_q, w_k, w_v = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
        ours.q_proj.weight.copy_(w_q)
        ours.k_proj.weight.copy_(w_k)
        ours.v_proj.weight.copy_(w_v)
        ours.out_proj.weight.copy_(m.out_proj.weight)
        if has_bias:
            b_q, b_k, b_v = m.in_proj_bias.chunk(3)
            ours.q_proj.bias.copy_(b_q)
            ours.k_proj.bias.copy_(b_k)
            ours.v_proj.bias.copy_(b_v)
            ours.out_proj.bias.copy_(m.out_proj.bias)
    return ours.train(m.training)


def mha_to_torch(m: MultiHeadAttention) -> nn.MultiheadAttention:
    if m.n_kv_heads != m.n_heads:
        raise ValueError(
            "torch.nn.MultiheadAttention has no grouped-query attention: n_kv_heads must equal "
            f"n_heads={m.n_heads}; got n_kv_heads={m.n_kv_heads}"
        )
    if m.scale is not None and m.scale != m.head_dim**-0.5:
        raise ValueError(
            "torch.nn.MultiheadAttention always scales by 1/√d_h = "
            f"{m.head_dim**-0.5:.6g}; this module uses scale={m.scale}"
        )
    ref = m.out_proj.weight
    has_bias = m.out_proj.bias is not None
    theirs = nn.MultiheadAttention(
        m.d_model, m.n_heads, dropout=m.dropout, bias=has_bias, kdim=m.kdim, vdim=m.vdim,
        batch_first=True, device=ref.device, dtype=ref.dtype,
    )  # fmt: skip
    with torch.no_grad():
        weights = (m.q_proj.weight, m.k_proj.weight, m.v_proj.weight)
        if theirs._qkv_same_embed_dim:
            theirs.in_proj_weight.copy_(torch.cat(weights))
        else:
            theirs.q_proj_weight.copy_(weights[0])
            theirs.k_proj_weight.copy_(weights[1])
            theirs.v_proj_weight.copy_(weights[2])
        theirs.out_proj.weight.copy_(m.out_proj.weight)
        if has_bias:
            theirs.in_proj_bias.copy_(torch.cat((m.q_proj.bias, m.k_proj.bias, m.v_proj.bias)))
            theirs.out_proj.bias.copy_(m.out_proj.bias)
    return theirs.train(m.training)
