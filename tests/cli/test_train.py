from pathlib import Path

import pytest

from attnlab.cli.main import main
from attnlab.data.shakespeare import read_plays


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    corpus = root / "plays.txt"
    corpus.write_text(read_plays(limit=1)[:40_000], encoding="utf-8")
    out = root / "out"
    flags = ["--preset", "shakespeare-char", "--corpus", str(corpus), "--n-layers", "1",
             "--d-model", "32", "--d-ff", "64", "--context", "48", "--batch", "8", "--steps",
             "40", "--eval-interval", "20", "--out-dir", str(out), "--time-limit", "0"]  # fmt: skip
    assert main(["train", *flags]) == 0
    return out


def test_train_writes_checkpoint_and_log(trained, capsys):
    assert (trained / "checkpoint.safetensors").exists()
    assert len((trained / "metrics.jsonl").read_text().splitlines()) >= 4


def test_generate_continues_a_prompt(trained, capsys):
    ckpt = str(trained / "checkpoint.safetensors")
    assert main(["generate", "--checkpoint", ckpt, "--prompt", "ROMEO:", "--tokens", "100"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text) > 100


def test_unknown_preset_option_in_toml(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text("learning_rate = 0.1\n")
    assert main(["train", "--config", str(toml)]) == 2
    assert "unknown training options: ['learning_rate']" in capsys.readouterr().err


def test_missing_checkpoint(capsys):
    assert main(["generate", "--checkpoint", str(Path("/nonexistent/ckpt"))]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


@pytest.mark.slow
def test_translation_trains_on_real_verses_and_translates(tmp_path, capsys):
    out = tmp_path / "tr"
    flags = ["--preset", "translate-en-es", "--bpe-vocab", "500", "--n-layers", "1",
             "--d-model", "32", "--d-ff", "64", "--steps", "20", "--eval-interval", "10",
             "--batch", "8", "--out-dir", str(out), "--time-limit", "0"]  # fmt: skip
    assert main(["train", *flags]) == 0
    ckpt = str(out / "checkpoint.safetensors")
    assert main(["generate", "--checkpoint", ckpt, "--prompt", "And God said"]) == 0
    assert capsys.readouterr().out.strip()  # some Spanish-tokenised text, untrained quality
    fig = tmp_path / "align.png"
    evaluate = ["evaluate", "--checkpoint", ckpt, "--n", "8", "--align", "And God said", "-o"]
    assert main([*evaluate, str(fig)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("BLEU ") and "on 8 held-out verses" in out and "REF " in out
    assert fig.stat().st_size > 5_000
