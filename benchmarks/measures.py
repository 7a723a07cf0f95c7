"""Rollout and value norms on long documents: streamed single-target measures vs the forward.

    python -m benchmarks.measures            # N = 2048, 4096, 8192 and the full rollout at 2048
    python -m benchmarks.measures --quick    # a smoke run (N = 256, all cases in one process)

Model: a BertModel of MiniLM's shape (6 layers, 12 heads, hidden 384) with random weights and
max_position_embeddings = 8192 (no pretrained model that long ships offline), SDPA attention,
one text of N random tokens, 2 threads. Each case runs in a fresh process:
* ``forward``: the plain model call (the time to match: target ≤ 2× it);
* ``rollout-target``: the model under ``attnlab.capture``, then ``measures.rollout(maps,
  target=N // 2)`` (one row pushed down the layers, each layer's rows recomputed from the exact
  maps block by block);
* ``value-norms-target`` (per head, (1, H, N) per layer) and ``value-norms-target-combined``
  (‖Σ_h …‖, (1, N) per layer): ``measures.value_norms(model, inputs, target=N // 2)``, which
  runs the model once itself;
* at N = 2048, ``rollout-full`` (capture + the (N, N) rollout) against
  ``rollout-dense-reference``: eager attention with ``output_attentions=True`` and the formula
  (½·mean_h A + ½·I, multiplied through the layers) in plain PyTorch.
Time is the median of repetitions, as wall time and as the process's CPU time (all threads;
steadier than wall time when other work shares the cores); peak memory is the growth of
resident memory (VmHWM) over the loaded model and inputs during the first call, compared with
what the dense maps alone take (6·12·N²·4 bytes; target: at most a tenth).
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

from benchmarks.common import peak_rss_mb, reset_peak, rss_mb, setup_threads

LAYERS, HEADS = 6, 12
TARGETED = ("forward", "rollout-target", "value-norms-target", "value-norms-target-combined")
FULL = ("rollout-full", "rollout-dense-reference")


def load(implementation: str):  # -> a MiniLM-shaped BertModel with random weights, eval mode
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, intermediate_size=1536, max_position_embeddings=8192,
        attn_implementation=implementation,
    )  # fmt: skip
    return BertModel(config).eval()


def dense_rollout(attentions: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The formula on eager's (B, H, N, N) weights: R = Â_L ⋯ Â_1, Â = ½·mean_h A + ½·I."""
    eye = torch.eye(attentions[0].shape[-1])
    result = eye.expand(attentions[0].shape[0], -1, -1)
    for weights in attentions:
        result = torch.bmm(0.5 * weights.mean(dim=1) + 0.5 * eye, result)
    return result


def case_function(mode: str, model, inputs: dict, target: int):  # -> a callable
    from attnlab import capture, measures

    def captured_rollout(position: int | None):
        with capture(model) as maps:
            model(**inputs)
        return measures.rollout(maps, target=position)

    return {
        "forward": lambda: model(**inputs),
        "rollout-target": lambda: captured_rollout(target),
        "value-norms-target": lambda: measures.value_norms(model, inputs, target=target),
        "value-norms-target-combined": lambda: measures.value_norms(
            model, inputs, target=target, combine_heads=True
        ),
        "rollout-full": lambda: captured_rollout(None),
        "rollout-dense-reference": lambda: dense_rollout(
            model(**inputs, output_attentions=True).attentions
        ),
    }[mode]


def run_case(mode: str, n: int, reps: int) -> dict:
    setup_threads()
    model = load("eager" if mode == "rollout-dense-reference" else "sdpa")
    inputs = {
        "input_ids": torch.randint(1000, 2000, (1, n), generator=torch.Generator().manual_seed(n))
    }
    fn = case_function(mode, model, inputs, n // 2)
    with torch.no_grad():
        base = rss_mb()
        reset_peak()
        kept = fn()  # the result stays alive for the measurement, as a user keeps it
        peak = peak_rss_mb() - base
        del kept
        times, cpu = [], []
        for _ in range(reps):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return {"seconds": statistics.median(times), "cpu_seconds": statistics.median(cpu),
            "peak_mb": peak}  # fmt: skip


def _in_fresh_process(mode: str, n: int, reps: int) -> dict:
    case = {"mode": mode, "n": n, "reps": reps}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.measures", "--case", json.dumps(case)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short inputs, one repetition")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(**json.loads(args.case))))
        return
    sizes, full_at, reps = ((256,), 256, 1) if args.quick else ((2048, 4096, 8192), 2048, 3)
    cases = [(mode, n) for n in sizes for mode in TARGETED] + [(m, full_at) for m in FULL]
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print("| N | case | ms | time / forward | CPU ms | CPU / forward | peak MB | "
          "peak / dense maps |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    forward: dict[int, dict] = {}
    for mode, n in cases:
        r = run_case(mode, n, reps) if args.quick else _in_fresh_process(mode, n, reps)
        f = forward.setdefault(n, r)  # each N's first case is the plain forward
        dense_mb = LAYERS * HEADS * n * n * 4 / 2**20
        print(f"| {n} | {mode} | {r['seconds'] * 1e3:,.0f} | {r['seconds'] / f['seconds']:.2f} | "
              f"{r['cpu_seconds'] * 1e3:,.0f} | {r['cpu_seconds'] / f['cpu_seconds']:.2f} | "
              f"{r['peak_mb']:,.0f} | {r['peak_mb'] / dense_mb:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
