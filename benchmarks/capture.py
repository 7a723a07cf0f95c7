"""Capturing exact attention with attnlab vs Hugging Face's output_attentions.

    python -m benchmarks.capture            # every model below
    python -m benchmarks.capture --model llama-8x512
    python -m benchmarks.capture --quick    # a smoke run

Models: MiniLM at N ∈ {128, 512}; a 6×12 BERT at {2048, 4096}; a Llama-shaped decoder (8 layers,
d = 512, 8 query heads sharing 2 key/value heads, causal, rotary) at {2048, 4096, 8192}, where
eager is skipped at 8192 (its maps alone would take 8·8·N²·4 bytes ≈ 17 GB; the estimate is
printed instead). Three ways to run the same forward, each case in a fresh process:
* ``sdpa``: Hugging Face's default SDPA attention, no weights (the speed to match);
* ``capture``: the same SDPA model under ``attnlab.capture`` (exact maps kept, O(N·d) memory);
* ``eager``: Hugging Face eager attention with ``output_attentions=True`` (every (B,H,N,N) map).
Time is the median of repetitions; peak memory is the growth of resident memory (VmHWM) over
the loaded model and inputs. MiniLM has real weights; the long-context model is a BertModel of the
same shape with max_position_embeddings=4096 and random weights (no pretrained model that long
ships offline).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # same for every contender; see attention.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from benchmarks.common import peak_rss_mb, reset_peak, rss_mb

MODES = ("sdpa", "capture", "eager")


LLAMA = dict(
    vocab_size=32000, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
    num_key_value_heads=2, intermediate_size=1376, max_position_embeddings=8192,
)  # fmt: skip
EAGER_LIMIT = {"llama-8x512": 4096}  # longer: eager's maps would not fit in memory


def eager_map_bytes(model: str, n: int) -> int:
    layers, heads = (8, 8) if model == "llama-8x512" else (6, 12)
    return layers * heads * n * n * 4


def load(model: str, mode: str):  # -> a Hugging Face model in eval mode
    implementation = "eager" if mode == "eager" else "sdpa"
    if model == "llama-8x512":
        from transformers import LlamaConfig, LlamaModel

        torch.manual_seed(0)
        return LlamaModel(LlamaConfig(**LLAMA, attn_implementation=implementation)).eval()
    if model == "minilm":
        from attnlab.inspection.pretrained import load_minilm

        return load_minilm(implementation)[0]
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
        intermediate_size=1536, max_position_embeddings=4096,
        attn_implementation=implementation,
    )  # fmt: skip
    return BertModel(config).eval()


def run_case(model_name: str, mode: str, n: int, reps: int) -> dict:
    import attnlab

    torch.set_num_threads(2)
    model = load(model_name, mode)
    ids = torch.randint(1000, 2000, (1, n))

    def forward():
        if mode == "eager":
            return model(ids, output_attentions=True).attentions
        if mode == "capture":
            with attnlab.capture(model) as maps:
                model(ids)
            return maps
        return model(ids)

    with torch.no_grad():
        base = rss_mb()
        reset_peak()
        kept = forward()  # what a user keeps afterwards stays alive for the measurement
        peak = peak_rss_mb() - base
        del kept
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            forward()
            times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short inputs, one repetition")
    parser.add_argument("--model", choices=["minilm", "bert-4096", "llama-8x512"],
                        help="only this model")  # fmt: skip
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case = json.loads(args.case)
        print(json.dumps(run_case(**case)))
        return
    cases = [("minilm", 64), ("llama-8x512", 64)] if args.quick else [
        ("minilm", 128), ("minilm", 512), ("bert-4096", 2048), ("bert-4096", 4096),
        ("llama-8x512", 2048), ("llama-8x512", 4096), ("llama-8x512", 8192),
    ]  # fmt: skip
    cases = [c for c in cases if args.model in (None, c[0])]
    reps = 1 if args.quick else 3
    print("| model | N | mode | ms | time / sdpa | peak MB | peak / eager |")
    print("|---|---|---|---|---|---|---|")
    for model_name, n in cases:
        results = {}
        for mode in MODES:
            if mode == "eager" and n > EAGER_LIMIT.get(model_name, n):
                continue
            case = {"model_name": model_name, "mode": mode, "n": n, "reps": reps}
            if args.quick:  # a smoke run: one process (peak memory then means little)
                results[mode] = run_case(**case)
                continue
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.capture", "--case", json.dumps(case)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        if "eager" not in results:
            need = eager_map_bytes(model_name, n) / 2**20
            print(f"| {model_name} | {n} | eager | skipped | – | ≥ {need:,.0f} (maps alone) | – |")
        eager_mb = results["eager"]["peak_mb"] if "eager" in results else None
        for mode in results:
            r = results[mode]
            slow = r["seconds"] / results["sdpa"]["seconds"]
            mem = r["peak_mb"] / max(eager_mb or eager_map_bytes(model_name, n) / 2**20, 1e-9)
            print(f"| {model_name} | {n} | {mode} | {r['seconds'] * 1e3:.0f} | {slow:.2f} | "
                  f"{r['peak_mb']:.0f} | {mem:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
