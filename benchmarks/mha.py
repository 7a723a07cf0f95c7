"""attnlab.MultiHeadAttention vs torch.nn.MultiheadAttention, inference.

    python -m benchmarks.mha            # D=512, H=8, B=8, N=512
    python -m benchmarks.mha --quick    # a smoke run

Both modules hold the same weights (``from_torch``) and run in eval mode under
``torch.inference_mode``; PyTorch's module takes its "fast path" there (``need_weights=False``).
Medians of interleaved repetitions; ratio = PyTorch's time / attnlab's time.
"""

from __future__ import annotations

import argparse
import os

# Large fresh allocations fault 4 KB pages one by one; transparent huge pages make that cheap.
# Read by PyTorch at its first allocation, so set before torch is imported. Applies to every
# contender alike.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import torch

from attnlab import MultiHeadAttention
from benchmarks.common import interleaved_medians, setup_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    args = parser.parse_args()
    setup_threads()
    d, h, b, n = (64, 4, 2, 32) if args.quick else (512, 8, 8, 512)
    theirs = torch.nn.MultiheadAttention(d, h, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(theirs).eval()
    x = torch.randn(b, n, d)
    fns = {
        "torch.nn.MultiheadAttention": lambda: theirs(x, x, x, need_weights=False),
        "torch.nn.MultiheadAttention (causal)": lambda: theirs(
            x, x, x, need_weights=False, attn_mask=causal_t, is_causal=True
        ),
        "attnlab.MultiHeadAttention": lambda: ours(x),
        "attnlab.MultiHeadAttention (causal)": lambda: ours(x, causal=True),
    }
    causal_t = torch.nn.Transformer.generate_square_subsequent_mask(n)
    with torch.inference_mode():
        t = interleaved_medians(fns, 1 if args.quick else 15)
    print(f"D={d}, H={h}, B={b}, N={n}, float32, eval, inference_mode")
    print("| module | ms | torch time / attnlab time |")
    print("|---|---|---|")
    for name, secs in t.items():
        peer = "torch.nn.MultiheadAttention" + (" (causal)" if "causal" in name else "")
        print(f"| {name} | {secs * 1e3:.2f} | {t[peer] / secs:.2f} |")


if __name__ == "__main__":
    main()
