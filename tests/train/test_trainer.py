"""Training: the loss falls, checkpoints are checked, nothing is written before every check, a
diverging run saves nothing. Kills, Ctrl-C and full disks: tests/faults."""

import json
import math
import re
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

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
            "warmup": 5, "dropout": 0.1, "out_dir": str(out), "time_limit": 0.0,
            "dtype": "float32"}  # fmt: skip
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


def files(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


@pytest.mark.parametrize("bad", [{"batch": 5, "accumulate": 2}, {"context": 100_000}])
@pytest.mark.parametrize("mode", ["resume", "overwrite"])
def test_a_run_that_fails_a_check_writes_nothing(corpus, tmp_path, bad, mode):
    train(tiny(corpus, tmp_path, steps=10))
    before = files(tmp_path)
    with pytest.raises(ValueError, match="batch must be divisible|too few for one batch"):
        train(tiny(corpus, tmp_path, steps=20, **bad), **{mode: True})
    assert files(tmp_path) == before


def test_overwrite_replaces_the_run(corpus, tmp_path):
    train(tiny(corpus, tmp_path, steps=20))
    with pytest.raises(FileExistsError, match="holds a run"):
        train(tiny(corpus, tmp_path, steps=10))
    train(tiny(corpus, tmp_path, steps=10), overwrite=True)
    assert (
        max(losses(tmp_path)) == 10
        and load_training(tmp_path / "checkpoint.safetensors").step == 10
    )


@pytest.mark.parametrize(("at", "what"), [(15, "the training loss is nan"),
                                          (20, "the validation loss is nan"),
                                          (20, "the weights are no longer finite")])  # fmt: skip
def test_a_diverging_run_names_the_step_and_saves_nothing_over_the_last_checkpoint(
    corpus, tmp_path, monkeypatch, at, what
):
    from attnlab.train import trainer

    if "weights" in what:  # NaN only in weights the validation batches do not reach
        monkeypatch.setattr(trainer, "evaluate", lambda *args: 1.0)
    real = trainer.learning_rate
    monkeypatch.setattr(trainer, "learning_rate",  # weights NaN after step ``at``
                        lambda step, **kw: math.nan if step == at - 1 else real(step, **kw))  # fmt: skip
    failing = at + 1 if at % 10 else at
    checkpoint = tmp_path / "checkpoint.safetensors"
    message = (f"training diverged at step {failing}: {what}; nothing was saved over the last "
               f"good checkpoint ({checkpoint} keeps step 10)")  # fmt: skip
    with pytest.raises(FloatingPointError, match=re.escape(message)):
        train(tiny(corpus, tmp_path, steps=30))
    assert load_training(checkpoint).step == 10


def test_resume_compares_the_resolved_corpus_path_and_its_content(corpus, tmp_path, monkeypatch):
    copy = tmp_path / "plays.txt"
    copy.write_text(corpus.read_text())
    monkeypatch.chdir(tmp_path)
    train(tiny("plays.txt", tmp_path / "run", steps=10))
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    forget_corpus_hash(checkpoint)  # as files written before it: the resolved paths decide
    train(tiny(copy.resolve(), tmp_path / "run", steps=20), resume=True)  # the same file
    assert load_training(checkpoint).corpus_sha256 is not None
    copy.write_text(corpus.read_text().replace("the", "thy"))
    with pytest.raises(ValueError, match=r"corpus: checkpoint trained on '.*plays.txt' \(sha256 "
                       r"[0-9a-f]{12}\), requested 'plays.txt' holds other text"):  # fmt: skip
        train(tiny("plays.txt", tmp_path / "run", steps=30), resume=True)


def forget_corpus_hash(path):
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    training = json.loads(meta["training"])
    del training["corpus_sha256"]
    safetensors.torch.save_file(tensors, path, metadata={**meta, "training": json.dumps(training)})


def test_bfloat16_training_follows_float32_and_keeps_float32_weights(corpus, tmp_path):
    runs = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        train(tiny(corpus, out, steps=40, lr=3e-3, dtype=dtype))
        runs[dtype] = losses(out)
        state = load_training(out / "checkpoint.safetensors")
        assert state.config.dtype == dtype
        assert {t.dtype for t in state.model_state.values()} == {torch.float32}
    f32, bf16 = runs["float32"], runs["bfloat16"]
    assert bf16[40] < bf16[10] - 0.3  # it learns
    assert abs(bf16[40] - f32[40]) < 0.05  # as float32 does, within bfloat16's rounding
    assert bf16 != f32  # and it did run in bfloat16


def test_a_checkpoint_from_before_activation_and_dtype_resumes_as_it_was_trained(corpus, tmp_path):
    """Runs written before the fields existed used GPT-2's tanh GELU and float32: resuming one
    builds that model, and asking for another activation is refused, naming the field."""
    train(tiny(corpus, tmp_path, steps=10, activation="gelu_tanh"))
    path = tmp_path / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    training = json.loads(meta["training"])
    for field in ("activation", "dtype"):
        del training["config"][field]
    safetensors.torch.save_file(tensors, path, metadata={**meta, "training": json.dumps(training)})
    state = load_training(path)
    assert (state.config.activation, state.config.dtype) == ("gelu_tanh", "float32")
    assert train(tiny(corpus, tmp_path, steps=12, activation="gelu_tanh"), resume=True).steps == 12
    with pytest.raises(ValueError, match=r"activation: checkpoint 'gelu_tanh', requested 'gelu'"):
        train(tiny(corpus, tmp_path, steps=14), resume=True)
    with pytest.raises(ValueError, match=r"dtype: checkpoint 'float32', requested 'bfloat16'"):
        train(tiny(corpus, tmp_path, steps=14, activation="gelu_tanh", dtype="bfloat16"),
              resume=True)  # fmt: skip
