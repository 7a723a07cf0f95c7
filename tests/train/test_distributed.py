"""Two processes (gloo over loopback) train exactly like one with the same global batch."""

import json

import pytest

from attnlab.data.shakespeare import read_plays
from attnlab.train.config import load_config
from attnlab.train.distributed import spawn
from attnlab.train.trainer import train


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    corpus = tmp_path / "plays.txt"
    corpus.write_text(read_plays(limit=1)[:40_000], encoding="utf-8")
    common = {"corpus": str(corpus), "n_layers": 1, "n_heads": 2, "d_model": 32, "d_ff": 64,
              "context": 32, "batch": 8, "steps": 12, "eval_interval": 6, "eval_batches": 2,
              "warmup": 2, "dropout": 0.0, "time_limit": 0.0, "dtype": "float32"}  # fmt: skip
    one = load_config("shakespeare-char", **common, out_dir=str(tmp_path / "one"))
    two = load_config("shakespeare-char", **common, out_dir=str(tmp_path / "two"))
    train(one)
    result = spawn(two, 2)
    assert (result.steps, result.stopped) == (12, "finished")

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines)]

    assert losses("two") == pytest.approx(losses("one"), abs=1e-5)


@pytest.mark.slow
def test_an_error_in_the_processes_is_raised_as_itself(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("to be or not to be, that is the question " * 3)
    config = load_config("shakespeare-char", corpus=str(small), n_layers=1, d_model=16, d_ff=32,
                         context=32, batch=8, out_dir=str(tmp_path / "run"))  # fmt: skip
    with pytest.raises(ValueError, match="too few for one batch of 8 sequences"):
        spawn(config, 2)
    assert not (tmp_path / "run").exists()  # nothing written
