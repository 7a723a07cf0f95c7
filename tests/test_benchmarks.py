"""The benchmark scripts run (in their quick mode), so they never rot."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "attention",
        "backends",
        "mha",
        "models",
        "capture",
        "viz",
        "floor",
        "hooks",
        "measures",
        "training",
        "training --parts",
    ],
)
def test_benchmark_quick_mode_runs(script):
    module, *options = script.split()
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--quick", *options],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert "|---|" in done.stdout and len(rows) >= 2  # a header and at least one result
