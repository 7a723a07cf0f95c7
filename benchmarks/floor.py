"""The arithmetic floor of a BERT-shaped forward: its bare GEMMs plus PyTorch's fused attention.

    python -m benchmarks.floor            # MiniLM's shape (D=384, 12 heads, 6 layers), N=2048
    python -m benchmarks.floor --quick    # a smoke run

Times, per layer, the four linear GEMMs (Q/K/V stacked, W_O, the feed-forward's two) on (N, D)
activations and ``F.scaled_dot_product_attention`` on (1, H, N, D/H), medians of several runs, and
multiplies by the depth. No implementation of the same model can run its forward faster than this
on the same machine (LayerNorm, GELU and embeddings come on top), so it bounds what capture can
gain over Hugging Face's eager ``output_attentions`` (see docs/benchmarks.md, issue 4).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved_medians, setup_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--n", type=int, default=2048, help="sequence length N")
    args = parser.parse_args()
    setup_threads()
    n, d, heads, layers = (128, 64, 4, 2) if args.quick else (args.n, 384, 12, 6)
    x, hidden = torch.randn(n, d), torch.randn(n, 4 * d)  # (N, D), (N, 4D)
    w_qkv, w_o = torch.randn(3 * d, d), torch.randn(d, d)
    w_1, w_2 = torch.randn(4 * d, d), torch.randn(d, 4 * d)
    q, k, v = (torch.randn(1, heads, n, d // heads) for _ in range(3))  # (1, H, N, d_h)
    fns = {
        "linear GEMMs": lambda: (x @ w_qkv.t(), x @ w_o.t(), x @ w_1.t(), hidden @ w_2.t()),
        "SDPA attention": lambda: F.scaled_dot_product_attention(q, k, v),
    }
    with torch.no_grad():
        t = interleaved_medians(fns, 1 if args.quick else 7)
    print(f"D={d}, {heads} heads, {layers} layers, N={n}, float32, 2 threads")
    print("| part | ms per layer | ms per forward |")
    print("|---|---|---|")
    for name, secs in t.items():
        print(f"| {name} | {secs * 1e3:.1f} | {secs * layers * 1e3:.0f} |")
    total = sum(t.values())
    print(f"| floor | {total * 1e3:.1f} | {total * layers * 1e3:.0f} |")


if __name__ == "__main__":
    main()
