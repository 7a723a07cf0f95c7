"""Training: the loss falls, a killed run resumes with the same losses, checkpoints are safe."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from attnlab.data.shakespeare import read_plays
from attnlab.train.checkpoint import load_training
from attnlab.train.config import load_config
from attnlab.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "plays.txt"
    path.write_text(read_plays(limit=1)[:40_000], encoding="utf-8")
    return path


def tiny(corpus, out, **changes):
    base = {"corpus": str(corpus), "n_layers": 1, "n_heads": 2, "d_model": 32, "d_ff": 64,
            "context": 32, "batch": 8, "steps": 30, "eval_interval": 10, "eval_batches": 2,
            "warmup": 5, "dropout": 0.1, "out_dir": str(out), "time_limit": 0.0}  # fmt: skip
    return load_config("shakespeare-char", **{**base, **changes})


def losses(out):
    lines = (Path(out) / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}


def test_training_lowers_the_loss_and_writes_a_checkpoint(corpus, tmp_path):
    result = train(tiny(corpus, tmp_path, steps=60, lr=3e-3))
    log = losses(tmp_path)
    assert result.stopped == "finished" and result.steps == 60
    assert log[60] < log[10] - 0.3
    state = load_training(tmp_path / "checkpoint.safetensors")
    assert state.step == 60 and json.loads(state.tokenizer_json)["kind"] == "char"


def test_resume_after_kill_gives_the_uninterrupted_losses(corpus, tmp_path):
    straight = tmp_path / "straight"
    train(tiny(corpus, straight, steps=150))
    killed = tmp_path / "killed"
    flags = ["--preset", "shakespeare-char", "--corpus", str(corpus), "--n-layers", "1",
             "--n-heads", "2", "--d-model", "32", "--d-ff", "64", "--context", "32", "--batch",
             "8", "--steps", "150", "--eval-interval", "10", "--eval-batches", "2", "--warmup",
             "5", "--dropout", "0.1", "--out-dir", str(killed), "--time-limit", "0"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "attnlab", "train", *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    checkpoint = killed / "checkpoint.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for a checkpoint past step 10, then kill -9
        if checkpoint.exists() and load_training(checkpoint).step >= 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_training(checkpoint).step < 150  # really interrupted
    train(tiny(corpus, killed, steps=150), resume=True)
    assert losses(killed) == pytest.approx(losses(straight), abs=1e-6)


def test_sigint_saves_and_exits_cleanly(corpus, tmp_path):
    flags = ["--preset", "shakespeare-char", "--corpus", str(corpus), "--n-layers", "1",
             "--d-model", "32", "--d-ff", "64", "--context", "32", "--batch", "8", "--steps",
             "100000", "--out-dir", str(tmp_path), "--time-limit", "0"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "attnlab", "train", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    log = tmp_path / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "interrupted at step" in out
    assert load_training(tmp_path / "checkpoint.safetensors").step >= 10


def test_checkpoint_from_another_config_is_refused(corpus, tmp_path):
    train(tiny(corpus, tmp_path, steps=10))
    with pytest.raises(
        ValueError, match="written by another configuration: d_model: checkpoint 32"
    ):
        train(tiny(corpus, tmp_path, steps=20, d_model=64), resume=True)


def test_corrupted_checkpoint_is_a_clear_error(corpus, tmp_path):
    train(tiny(corpus, tmp_path, steps=10))
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        train(tiny(corpus, tmp_path, steps=20), resume=True)


def test_pickle_is_refused(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    torch.save({"step": 1}, path)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_training(path)


def test_disk_full_while_saving_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch):
    train(tiny(corpus, tmp_path, steps=10))
    before = (tmp_path / "checkpoint.safetensors").read_bytes()

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train(tiny(corpus, tmp_path, steps=20), resume=True)
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == before
    assert load_training(tmp_path / "checkpoint.safetensors").step == 10


def test_tiny_corpus_is_refused(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("to be or not to be")
    with pytest.raises(ValueError, match="too few for one batch of 8 sequences of 33 tokens"):
        train(tiny(small, tmp_path / "out"))


def test_non_utf8_corpus_is_refused(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("señor".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="is not UTF-8 text .*iconv"):
        train(tiny(bad, tmp_path / "out"))
