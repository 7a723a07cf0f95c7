"""What unused hook points cost a GPT forward.

    python -m benchmarks.hooks            # char-small GPT (6×384, 6 heads), decode and T=256
    python -m benchmarks.hooks --quick    # a smoke run

Every layer has 12 hook points (6 in attention, 5 in the block, 1 in the feed-forward), and the
projections' own hooks must fire too. Four builds of the same model and weights, timed in turn:

* ``without hook points``: every check replaced by nothing (the code before hook points);
* ``checked (shipped)``: one :func:`attnlab.hooks.hooks_below` check per layer call (attention,
  feed-forward, block); hook points and the projections' hooks run only when it is true;
* ``always called``: every hook point called through ``nn.Module.__call__``;
* ``read-only hook on every hook_q``: the shipped build with a forward hook on each layer's
  ``hook_q`` that keeps a reference to the value (what a cache does).

Cases: one decoding step (B=1, T=1, 64 positions in the KV cache) and a full T=256 forward. The
% columns are medians of paired ratios (two calls one after the other), the check columns the
measured cost of one unhooked check times the checks per forward. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
from collections.abc import Iterator

import torch

import attnlab.hooks as hooks_module
import attnlab.nn.attention as attention_module
import attnlab.nn.blocks as blocks_module
import attnlab.nn.feed_forward as ff_module
from attnlab import GPT, GPTConfig
from attnlab.functional.linear import linear
from attnlab.hooks import HookPoint
from benchmarks.common import interleaved_times, paired_ratio, setup_threads


@contextlib.contextmanager
def patched(variant: str, hook_q_points: list = ()) -> Iterator[None]:  # type: ignore[assignment]
    """Swap the hook helpers the modules imported by name, then restore them."""
    names = {
        attention_module: ("call_hook", "apply_linear", "has_hooks", "hooks_below"),
        blocks_module: ("call_hook", "hooks_below"),
        ff_module: ("call_hook", "apply_linear", "hooks_below"),
    }
    saved = {(m, n): getattr(m, n) for m, ns in names.items() for n in ns}
    replacements = {
        "without hook points": {
            "call_hook": lambda point, x: x,
            "apply_linear": lambda layer, x: linear(x, layer.weight, layer.bias),
            "has_hooks": lambda module: False,
            "hooks_below": lambda module: False,
        },
        "always called": {
            "call_hook": lambda point, x: point(x),
            "hooks_below": lambda module: True,
        },
        "checked (shipped)": {},
        READ_Q: {},
    }[variant]
    handles = []
    try:
        for (module, name), _ in saved.items():
            if name in replacements:
                setattr(module, name, replacements[name])
        if variant == READ_Q:  # a read-only hook: keep a reference, as a cache does
            seen: dict[str, torch.Tensor] = {}
            handles = [p.register_forward_hook(_keeper(seen, n)) for n, p in hook_q_points]
        yield
    finally:
        for handle in handles:
            handle.remove()
        for (module, name), fn in saved.items():
            setattr(module, name, fn)


READ_Q = "read-only hook on every hook_q"


def _keeper(seen: dict, name: str):  # type: ignore[no-untyped-def]
    def keep(module, inputs, output) -> None:  # type: ignore[no-untyped-def]
        seen[name] = output

    return keep


VARIANTS = ("without hook points", "checked (shipped)", "always called", READ_Q)


def min_seconds(fns: dict, reps: int, loops: int) -> dict[str, float]:
    """Fastest of the interleaved repetitions: on a shared machine the least disturbed run."""
    return {name: min(ts) for name, ts in interleaved_times(fns, reps, loops=loops).items()}


def paired_change(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over repetitions of time(name) / time(base) − 1, in % (:func:`paired_ratio`)."""
    return (paired_ratio(times, name, base) - 1) * 100


def checks_per_forward(gpt: GPT, fn) -> int:  # type: ignore[no-untyped-def]
    """How many hook checks (one per attention, feed-forward and block call) one call makes."""
    count = 0
    real = hooks_module.hooks_below

    def counting(module: torch.nn.Module) -> bool:
        nonlocal count
        count += 1
        return real(module)

    modules = (attention_module, blocks_module, ff_module)
    saved = [m.hooks_below for m in modules]
    try:
        for m in modules:
            m.hooks_below = counting
        fn()
    finally:
        for m, f in zip(modules, saved, strict=True):
            m.hooks_below = f
    return count


def per_call_costs(reps: int) -> dict[str, float]:
    point, x = HookPoint(), torch.randn(1, 1, 384)
    layer = attention_module.MultiHeadAttention(384, 6)
    fns = {
        "call_hook(point, x), no hook": lambda: hooks_module.call_hook(point, x),
        "hooks_below(attention layer), no hook": lambda: hooks_module.hooks_below(layer),
        "point(x) via nn.Module.__call__": lambda: point(x),
    }
    return min_seconds(fns, reps, 20000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    setup_threads()
    torch.set_num_threads(args.threads)
    if args.quick:
        config = GPTConfig(vocab_size=65, n_layers=2, d_model=64, n_heads=2, max_len=64)
    else:
        config = GPTConfig(vocab_size=65, n_layers=6, d_model=384, n_heads=6, max_len=256)
    gpt = GPT(config).eval()
    prefix = 16 if args.quick else 64
    cache = gpt.new_kv_cache(1)
    with torch.no_grad():
        gpt(torch.randint(0, 65, (1, prefix)), kv_cache=cache)
    token = torch.randint(0, 65, (1, 1))
    full = torch.randint(0, 65, (1, config.max_len))

    def decode_step() -> None:
        for layer in cache.layers:
            layer.length = prefix
        gpt(token, kv_cache=cache)

    reps = 1 if args.quick else 60
    costs = per_call_costs(reps)
    print("| per call, unhooked | µs |")
    print("|---|---|")
    for name, secs in costs.items():
        print(f"| {name} | {secs * 1e6:.3f} |")
    check = costs["hooks_below(attention layer), no hook"]
    cases = {"decode T=1, KV cache": decode_step, f"T={config.max_len}": lambda: gpt(full)}
    print(f"\nGPT {config.n_layers}×{config.d_model}, {config.n_heads} heads, B=1, float32, "
          f"{args.threads} thread(s); ms: fastest of interleaved repetitions; % columns: "
          "median of paired ratios")  # fmt: skip
    print("| case | " + " | ".join(f"{v} (ms)" for v in VARIANTS)
          + " | checks | checks (ms) | shipped vs without | hook_q read vs without |")  # fmt: skip
    print("|---|" + "---|" * (len(VARIANTS) + 4))
    for case, fn in cases.items():
        with torch.no_grad():
            n_checks = checks_per_forward(gpt, fn)
            points = [(n, m) for n, m in gpt.named_modules() if n.endswith("hook_q")]
            contexts = {v: functools.partial(patched, v, points) for v in VARIANTS}
            fns = dict.fromkeys(VARIANTS, fn)
            times = interleaved_times(fns, reps, loops=1 if args.quick else 5, contexts=contexts)
        t = {name: min(ts) for name, ts in times.items()}
        cells = " | ".join(f"{t[v] * 1e3:.3f}" for v in VARIANTS)
        base = t["without hook points"]
        share = n_checks * check / base * 100
        shipped = paired_change(times, "checked (shipped)", "without hook points")
        read_q = paired_change(times, READ_Q, "without hook points")
        print(f"| {case} | {cells} | {n_checks} | {n_checks * check * 1e3:.3f} ({share:.2f} %) | "
              f"{shipped:+.1f} % | {read_q:+.1f} % |")  # fmt: skip


if __name__ == "__main__":
    main()
