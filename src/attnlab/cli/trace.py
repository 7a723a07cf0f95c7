"""`attnlab trace`: print the shape trace of one MultiHeadAttention forward pass."""

from __future__ import annotations

import argparse

import torch

from attnlab.cli import _checks
from attnlab.memory import attention_estimate, ensure_fits
from attnlab.models.params import attention_parameter_count
from attnlab.nn.attention import MultiHeadAttention
from attnlab.trace import trace_shapes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trace",
        help="show tensor sizes through a multi-head attention forward pass",
        description=(
            "Run one MultiHeadAttention forward pass on random input and print every step's "
            "tensor size (x → q → heads → weights → concat → out) and which attention kernel "
            "ran and why."
        ),
    )
    p.add_argument("--d-model", type=int, default=128, help="model width D (default 128)")
    p.add_argument("--heads", type=int, default=4, help="attention heads H (default 4)")
    p.add_argument("--kv-heads", type=int, default=None, help="key/value heads (grouped-query)")
    p.add_argument("--seq", type=int, default=10, help="sequence length T (default 10)")
    p.add_argument("--batch", type=int, default=2, help="batch size B (default 2)")
    p.add_argument("--causal", action="store_true", help="apply a causal mask")
    p.add_argument("--need-weights", action="store_true", help="also return attention weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for flag in ("--d-model", "--heads", "--seq", "--batch", "--kv-heads"):
        _checks.number(flag, getattr(args, flag[2:].replace("-", "_")), at_least=1)
    need = attention_estimate(args.d_model, args.heads, batch=args.batch, seq=args.seq,
                              n_kv_heads=args.kv_heads, need_weights=args.need_weights)  # fmt: skip
    ensure_fits(need)
    mha = MultiHeadAttention(args.d_model, args.heads, n_kv_heads=args.kv_heads).eval()
    x = torch.randn(args.batch, args.seq, args.d_model)
    d_h = args.d_model // args.heads
    print(
        f"MultiHeadAttention(d_model={args.d_model}, n_heads={args.heads}): "
        f"{args.d_model} → {args.heads}×{d_h} → {args.d_model}"
    )
    with torch.no_grad(), trace_shapes():
        mha(x, causal=args.causal, need_weights=args.need_weights)
    n = sum(p.numel() for p in mha.parameters())
    one = attention_parameter_count(args.d_model, 1)
    print(f"parameters: {n:,} (one head of size {args.d_model} would have {one:,})")
    return 0
