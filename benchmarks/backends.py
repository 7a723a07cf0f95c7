"""Each attention backend against PyTorch's SDPA, weights off and on.

    python -m benchmarks.backends            # N = 1024 and 4096 (a few minutes)
    python -m benchmarks.backends --quick    # a smoke run

B=1, H=8, d=64, float32, 2 threads, no autograd. Times are medians of interleaved repetitions;
the ratio column is the time relative to the flash-cpu backend on the same row set (> 1 =
slower than flash-cpu), and SDPA's time is shown for scale. The portable backend uses public
PyTorch operations only, so it is the route a GPU (or any non-CPU device) takes.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as benchmarks.attention: cheap huge pages

import torch
import torch.nn.functional as F

import attnlab
from benchmarks.common import interleaved_medians, setup_threads

H, D_HEAD = 8, 64


def on(backend: str, q, k, v, causal: bool, need_weights: bool):
    def run():
        with attnlab.backend(backend):
            return attnlab.scaled_dot_product_attention(
                q, k, v, causal=causal, need_weights=need_weights
            )

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    args = parser.parse_args()
    setup_threads()
    sizes = [256] if args.quick else [1024, 4096]
    reps = 1 if args.quick else 5
    print("| N | causal | weights | contender | ms | time / flash-cpu time |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        q, k, v = (torch.randn(1, H, n, D_HEAD) for _ in range(3))
        for causal in (False, True):
            for need_weights in (False, True):
                fns = {b: on(b, q, k, v, causal, need_weights) for b in attnlab.BACKENDS}
                if not need_weights:
                    fns["sdpa"] = lambda q=q, k=k, v=v, c=causal: F.scaled_dot_product_attention(
                        q, k, v, is_causal=c
                    )
                if n > 2048:  # the reference materialises several N×N temporaries
                    fns.pop("reference")
                with torch.no_grad():
                    t = interleaved_medians(fns, reps)
                for name, secs in t.items():
                    print(f"| {n} | {causal} | {need_weights} | {name} | {secs * 1e3:.1f} | "
                          f"{secs / t['flash-cpu']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
