"""Helpers of the fault-injection tests: the tiny run, a child `attnlab train`, comparisons."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.train.checkpoint import load_training
from attnlab.train.config import load_config
from attnlab.train.trainer import train

SRC = Path(__file__).resolve().parents[2] / "src"
STEPS = 160
TINY = {"n_layers": 1, "n_heads": 2, "d_model": 16, "d_ff": 32, "context": 16, "batch": 4,
        "steps": STEPS, "eval_interval": 20, "eval_batches": 1, "warmup": 5, "dropout": 0.1,
        "time_limit": 0.0}  # fmt: skip


def config(corpus, out, **changes):
    return load_config(corpus=str(corpus), out_dir=str(out), **{**TINY, **changes})


def flags(corpus, out, **changes):
    """`attnlab train` flags for :func:`config` (same run)."""
    values = {**TINY, **changes, "corpus": str(corpus), "out_dir": str(out)}
    return [item for k, v in values.items() for item in (f"--{k.replace('_', '-')}", str(v))]


def losses(out):
    """Logged step → training loss; each step logged once."""
    steps = [(r["step"], r["loss"]) for r in map(json.loads, logged(out))]
    assert len({s for s, _ in steps}) == len(steps), "a step logged twice"
    return dict(steps)


def logged(out):
    return (Path(out) / "metrics.jsonl").read_text().splitlines()


def start(args, *, script="", cli=True):
    """A child process in its own process group (one thread) running ``attnlab train ARGS``
    (``cli``) or, faster to start, ``train()`` of the config of :func:`flags` ARGS; ``script``:
    Python run first (to inject a fault)."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    run = CLI if cli else LIBRARY
    return subprocess.Popen([sys.executable, "-c", f"{script}\n{run}", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


CLI = "import sys\nfrom attnlab.cli.main import main\nsys.exit(main(sys.argv[1:]))"
LIBRARY = """import sys
from attnlab.train.config import load_config
from attnlab.train.trainer import train
args = sys.argv[2:]
values = {k[2:].replace("-", "_"): v for k, v in zip(args[::2], args[1::2])}
kinds = {"corpus": str, "out_dir": str, "dropout": float, "time_limit": float}
train(load_config(**{k: kinds.get(k, int)(v) for k, v in values.items()}))"""


def wait_for(condition, proc, timeout=60.0):
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.communicate()}")
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def saved_step(out):
    path = Path(out) / "checkpoint.safetensors"
    try:
        return load_training(path).step
    except (FileNotFoundError, ValueError):  # not yet, or being renamed into place
        return None


def files(folder):
    """Every file in ``folder`` → its bytes."""
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def resume_and_compare(corpus, out, expected, *, stopped_at=None, tolerance=0.0, **changes):
    """Resume the run in ``out`` to the end, then: no temporary file is left, the log holds
    the uninterrupted run's losses, exactly (or within ``tolerance``), and the step a stop
    logged (``stopped_at``), and the checkpoint is the last step's."""
    result = train(config(corpus, out, **changes), resume=True)
    assert (result.steps, result.stopped) == (STEPS, "finished")
    left = [p.name for p in Path(out).iterdir() if p.name.startswith(".")]
    assert not left, f"temporary files left after resuming: {left}"
    found = losses(out)
    assert set(found) - set(expected) <= {stopped_at}
    assert {step: found[step] for step in expected} == pytest.approx(expected, abs=tolerance)
    assert load_training(Path(out) / "checkpoint.safetensors").step == STEPS
