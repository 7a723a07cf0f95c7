"""attnlab's scaled_dot_product_attention vs PyTorch's SDPA and a naive implementation.

    python -m benchmarks.attention            # the full table (several minutes)
    python -m benchmarks.attention --quick    # a smoke run

B=1, H=8, d=64, float32, 2 threads. Times are medians of interleaved repetitions; ratios are
SDPA's time divided by the contender's (> 1 = faster than SDPA). Peak memory is the growth of
resident memory (VmHWM) of a fresh process running one call, beyond its inputs.
"""

from __future__ import annotations

import argparse
import os

# Large fresh allocations fault 4 KB pages one by one; transparent huge pages make that cheap.
# Read by PyTorch at its first allocation, so set before torch is imported. Applies to every
# contender alike.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
import json

import torch
import torch.nn.functional as F

from attnlab import masks, scaled_dot_product_attention
from benchmarks.common import (
    interleaved_medians,
    peak_memory_mb,
    peak_rss_mb,
    reset_peak,
    rss_mb,
    setup_threads,
)

H, D_HEAD = 8, 64


def naive(q, k, v, causal):
    scores = q @ k.transpose(-2, -1) / D_HEAD**0.5  # (B, H, N, N)
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores, -1) @ v


def contenders(n: int, causal: bool, batch: int = 1) -> dict:
    q, k, v = (torch.randn(batch, H, n, D_HEAD) for _ in range(3))
    bool_causal = masks.causal(n)
    fns = {
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        "attnlab": lambda: scaled_dot_product_attention(q, k, v, causal=causal),
        "attnlab+weights": lambda: scaled_dot_product_attention(
            q, k, v, causal=causal, need_weights=True
        ),
        "naive": lambda: naive(q, k, v, causal),
    }
    if causal:
        fns["sdpa(bool mask)"] = lambda: F.scaled_dot_product_attention(
            q, k, v, attn_mask=bool_causal
        )
        fns["attnlab(bool mask)"] = lambda: scaled_dot_product_attention(q, k, v, bool_causal)
    return fns


def padded_contenders(n: int, causal: bool) -> dict:
    batch = 4
    q, k, v = (torch.randn(batch, H, n, D_HEAD) for _ in range(3))
    lengths = [n // 4, n // 2, 3 * n // 4, n]  # 25–100% of N
    mask = masks.padding_from_lengths(lengths, n)  # (B, 1, 1, N)
    full = mask & masks.causal(n) if causal else mask
    return {
        "sdpa(padded)": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=full),
        "attnlab(padded)": lambda: scaled_dot_product_attention(q, k, v, mask, causal=causal),
    }


def memory_case(case: dict) -> None:
    setup_threads()
    fns = (padded_contenders if case.get("padded") else contenders)(case["n"], case["causal"])
    fn = fns[case["name"]]
    with torch.no_grad():
        base = rss_mb()
        reset_peak()
        result = fn()
        del result
    print(f"{peak_rss_mb() - base:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        memory_case(json.loads(args.memory_case))
        return
    setup_threads()
    sizes = [128, 256] if args.quick else [256, 1024, 4096, 16384]
    reps = 1 if args.quick else 5
    print("| N | causal | contender | ms | SDPA time / time | peak MB |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        for causal in (False, True):
            fns = contenders(n, causal)
            if n >= 16384:  # the (8, N, N) weights alone are 8.6 GB: only the O(N·d) paths
                fns = {name: fn for name, fn in fns.items() if "weights" not in name}
                fns = {name: fn for name, fn in fns.items() if "naive" not in name}
                fns = {name: fn for name, fn in fns.items() if "bool" not in name}
            with torch.no_grad():
                t = interleaved_medians(fns, reps if n < 16384 else 2)
            for name, secs in t.items():
                mem = ""
                if not args.quick and n in (1024, 4096):
                    case = {"n": n, "causal": causal, "name": name}
                    mem = f"{peak_memory_mb('benchmarks.attention', case):.0f}"
                ratio = t["sdpa"] / secs
                print(f"| {n} | {causal} | {name} | {secs * 1e3:.1f} | {ratio:.2f} | {mem} |")
    n = 256 if args.quick else 2048
    for causal in (False, True):
        with torch.no_grad():
            t = interleaved_medians(padded_contenders(n, causal), reps)
        for name, secs in t.items():
            print(f"| B=4 {n} padded 25–100% | {causal} | {name} | {secs * 1e3:.1f} | "
                  f"{t['sdpa(padded)'] / secs:.2f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
