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


@pytest.fixture
def run_folder(trained, tmp_path):
    """A copy of the trained run's folder (a run the bad commands must not touch)."""
    folder = tmp_path / "run"
    folder.mkdir()
    for path in trained.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


TINY = ["--n-layers", "1", "--d-model", "32", "--d-ff", "64", "--context", "48", "--batch", "8",
        "--steps", "40", "--eval-interval", "20", "--time-limit", "0"]  # fmt: skip
BAD = [  # (flags, what stderr's one line must say); {run}: a folder holding a run
    (["--out-dir", "{run}", "--config", "{run}"], "config '{run}' is a folder; expected a TOML"),
    (["--out-dir", "{run}", "--resume", "--overwrite"], "resume and overwrite exclude each"),
    (["--out-dir", "{run}", "--resume", "--batch", "5", "--accumulate", "2"],
     "batch must be divisible by accumulate × nproc = 2 × 1 = 2; got 5"),
    (["--out-dir", "{run}", "--overwrite", "--batch", "6", "--accumulate", "2", "--nproc", "2"],
     "batch must be divisible by accumulate × nproc = 2 × 2 = 4; got 6"),
    (["--out-dir", "{run}", "--overwrite", "--bpe-vocab", "-5", "--tokenizer", "bpe"],
     "bpe_vocab must be an integer >= 1; got -5"),
    (["--out-dir", "{run}", "--overwrite", "--lr", "inf"], "lr must be a finite number in (0, inf)"),
    (["--out-dir", "{run}", "--overwrite", "--nproc", "0"], "nproc must be an integer >= 1; got 0"),
    (["--out-dir", "{run}", "--overwrite", "--nproc", "-2"], "nproc must be an integer >= 1; got -2"),
    (["--out-dir", "{run}", "--overwrite", "--min-lr", "-1"], "min_lr must be a finite number in "
     "[0, inf); got -1.0"),
    (["--out-dir", "{run}", "--overwrite", "--warmup", "-10"], "warmup must be an integer >= 0; "
     "got -10"),
    (["--out-dir", "{run}", "--overwrite", "--time-limit", "-1"], "time_limit must be a finite "
     "number in [0, inf); got -1.0"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "says"), BAD, ids=[" ".join(f) for f, _ in BAD])
def test_a_bad_train_command_is_one_line_and_touches_nothing(trained, run_folder, capsys, flags,
                                                             says):  # fmt: skip
    before = files(run_folder.parent)
    flags = [f.format(run=run_folder) for f in flags]
    corpus = ["--corpus", str(trained.parent / "plays.txt")]
    assert main(["train", *corpus, *TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("attnlab train: error: ") and says.format(run=run_folder) in err, err
    assert files(run_folder.parent) == before
