"""Timing and memory helpers shared by the benchmarks: interleaved repetitions, medians,
peak resident memory measured in a fresh subprocess."""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch


def interleaved_times(
    fns: dict[str, Callable[[], object]], reps: int, *, loops: int | None = None,
    min_sample: float = 0.05, contexts: dict[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:  # fmt: skip
    """Seconds per call of each function in every repetition, the functions run in turn within
    each repetition so machine load affects every contender alike (entry r of each list comes
    from the same round). A sample repeats a function ``loops`` times, or by default (after one
    warm-up call each) until it lasts about ``min_sample`` seconds (a single millisecond call is
    mostly timer and scheduler noise). A function's context (``contexts[name]()``, e.g. patched
    helpers or attached hooks) is entered around its sample, outside the timed loop."""
    counts = {}
    for name, fn in fns.items():
        if loops is None:
            start = time.perf_counter()
            fn()
            counts[name] = max(1, round(min_sample / max(time.perf_counter() - start, 1e-6)))
        else:
            counts[name] = loops
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            with contexts[name]() if contexts else contextlib.nullcontext():
                start = time.perf_counter()
                for _ in range(counts[name]):
                    fn()
                times[name].append((time.perf_counter() - start) / counts[name])
    return times


def interleaved_medians(
    fns: dict[str, Callable[[], object]], reps: int, *, min_sample: float = 0.05
) -> dict[str, float]:
    """Median seconds per call of each function (:func:`interleaved_times`)."""
    times = interleaved_times(fns, reps, min_sample=min_sample)
    return {name: statistics.median(ts) for name, ts in times.items()}


def paired_ratios(times: dict[str, list[float]], slower: str, faster: str) -> list[float]:
    """``slower``'s time ÷ ``faster``'s in each interleaved round: two calls made one after the
    other, so a disturbance or a slow drift of the machine affects both sides of a ratio."""
    return [a / b for a, b in zip(times[slower], times[faster], strict=True)]


def paired_ratio(times: dict[str, list[float]], slower: str, faster: str) -> float:
    """The median of :func:`paired_ratios`."""
    return statistics.median(paired_ratios(times, slower, faster))


def peak_memory_mb(module: str, case: dict) -> float:
    """Peak RSS growth (MB) of one case, run by ``python -m <module> --memory-case JSON`` in a
    fresh process: the process reports its RSS after building the inputs and its peak after
    running the case once."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--memory-case", json.dumps(case)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def reset_peak() -> None:
    """Reset the kernel's high-water mark so VmHWM measures from here on."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def setup_threads() -> None:
    torch.set_num_threads(2)
