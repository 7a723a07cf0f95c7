"""The CLI's error contract, for every subcommand: a bad argument gives exit status 2, exactly one
line on stderr (``attnlab CMD: error: ...`` naming what was wrong), no traceback, and no file of
the working folder changed, added or removed. ``--debug`` / ``ATTNLAB_DEBUG=1`` add the
traceback; Ctrl-C gives 130."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from attnlab.cli.main import SUBCOMMANDS, main

BAD_UTF8 = b"\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of such argv bytes
FAKE = "fake.safetensors"  # a file that is not a checkpoint: checks must refuse before reading it
NO_ROOM = "/proc/attnlab-contract"  # not writable, even for root

# (argv, a fragment the one error line must contain)
BAD = [
    # sizes that cannot fit (refused before allocating, with the estimate)
    (["trace", "--d-model", "100000000"], "needs about"),
    (["trace", "--batch", "1000000", "--seq", "1000000"], "needs about"),
    (["trace", "--seq", "1000000", "--d-model", "4", "--heads", "1", "--need-weights"], "attention weights"),
    (["train", "--d-model", "1000000000"], "needs about"),
    (["train", "--d-model", "100000", "--nproc", "2"], "needs about"),
    # numbers out of range
    (["trace", "--seq", "0"], "--seq must be an integer >= 1; got 0"),
    (["trace", "--heads", "-4"], "--heads must be an integer >= 1; got -4"),
    (["trace", "--kv-heads", "0"], "--kv-heads must be an integer >= 1; got 0"),
    (["trace", "--d-model", "128", "--heads", "5"], "nearest valid head counts: [4, 8]"),
    (["inspect", "the cat", "--token", "cat", "--top", "0"], "--top must be an integer >= 1"),
    (["show", "the cat", "--layer", "-1", "-o", "fig.png"], "--layer must be an integer >= 0"),
    (["generate", "--checkpoint", FAKE, "--tokens", "-5"], "--tokens must be an integer >= 1; got -5"),
    (["generate", "--checkpoint", FAKE, "--temperature", "nan"], "--temperature must be a finite number >= 0.0; got nan"),
    (["generate", "--checkpoint", FAKE, "--temperature", "inf"], "got inf"),
    (["generate", "--checkpoint", FAKE, "--temperature", "-1"], "got -1.0"),
    (["generate", "--checkpoint", FAKE, "--top-k", "0"], "--top-k must be an integer >= 1"),
    (["generate", "--checkpoint", FAKE, "--top-p", "0"], "--top-p must be a finite number > 0.0 and <= 1.0; got 0.0"),
    (["generate", "--checkpoint", FAKE, "--top-p", "1.5"], "got 1.5"),
    (["generate", "--checkpoint", FAKE, "--seed", "-1"], "--seed must be an integer >= 0"),
    (["evaluate", "--checkpoint", FAKE, "--n", "0"], "--n must be an integer >= 1; got 0"),
    (["train", "--nproc", "0"], "nproc must be an integer >= 1; got 0"),
    (["train", "--nproc", "-2"], "nproc must be an integer >= 1; got -2"),
    (["train", "--min-lr", "-1"], "min_lr must be a finite number in [0, inf); got -1.0"),
    (["train", "--warmup", "-10"], "warmup must be an integer >= 0; got -10"),
    (["train", "--time-limit", "-1"], "time_limit must be a finite number in [0, inf); got -1.0"),
    (["train", "--lr", "inf"], "lr must be a finite number in (0, inf); got inf"),
    (["train", "--bpe-vocab", "-5", "--tokenizer", "bpe"], "bpe_vocab must be an integer >= 1; got -5"),
    (["train", "--batch", "5", "--accumulate", "2"], "batch must be divisible by accumulate"),
    (["demo", "--top", "0"], "--top must be an integer >= 1; got 0"),
    (["demo", "--top", "-3"], "--top must be an integer >= 1; got -3"),
    # texts: invalid UTF-8 from argv, blank
    (["show", BAD_UTF8, "-o", "page.html"], "TEXT is not valid UTF-8: byte 0xff at character 0"),
    (["show", "the cat", "--compare", BAD_UTF8, "-o", "page.html"], "--compare is not valid UTF-8"),
    (["inspect", BAD_UTF8, "--token", "cat"], "TEXT is not valid UTF-8"),
    (["inspect", "the cat", "--token", "cat", "--key", BAD_UTF8], "--key is not valid UTF-8"),
    (["inspect", "   ", "--token", "cat"], "TEXT must be a non-empty text"),
    (["generate", "--checkpoint", FAKE, "--prompt", BAD_UTF8], "--prompt is not valid UTF-8"),
    (["generate", "--checkpoint", FAKE, "--prompt", ""], "--prompt must be a non-empty text; got ''"),
    (["evaluate", "--checkpoint", FAKE, "--align", BAD_UTF8], "--align is not valid UTF-8"),
    # output paths: a folder for a file, a file for a folder, an unwritable place
    (["show", "the cat", "-o", "adir.html"], "-o adir.html is a folder; expected a file name"),
    (["show", "the cat", "-o", "afile/page.html"], "cannot write -o afile/page.html: afile is a file"),
    (["show", "the cat", "-o", f"{NO_ROOM}/page.html"], f"cannot write -o {NO_ROOM}/page.html"),
    (["show", "the cat", "-o", "page.gif"], "-o must end in one of ('.html', '.png', '.svg')"),
    (["evaluate", "--checkpoint", FAKE, "--align", "hi", "-o", "adir.png"], "-o adir.png is a folder"),
    (["evaluate", "--checkpoint", FAKE, "--align", "hi", "-o", "fig.gif"], "-o must end in one of ('.png', '.svg')"),
    (["experiment", "scaling", "--quick", "--out", "afile"], "--out afile is a file; expected a folder"),
    (["experiment", "scaling", "--quick", "--out", NO_ROOM], f"cannot write --out {NO_ROOM}"),
    (["experiment", "scaling", "--quick", "--out", "runs"], "runs/scaling.json is a folder"),
    (["demo", "--out", "afile"], "--out afile is a file; expected a folder"),
    (["train", "--out-dir", "afile"], "out_dir 'afile' is a file; expected a folder"),
    (["demo", "--out", f"{NO_ROOM}/demo"], f"cannot write --out {NO_ROOM}/demo"),
    # input paths: missing, wrong kind, not what they claim to be
    (["generate", "--checkpoint", "missing.safetensors"], "--checkpoint: no checkpoint at missing.safetensors"),
    (["generate", "--checkpoint", "runs"], "--checkpoint: runs is a folder; expected a checkpoint file"),
    (["generate", "--checkpoint", FAKE], "fake.safetensors is not a readable checkpoint"),
    (["evaluate", "--checkpoint", "missing.safetensors"], "no checkpoint at missing.safetensors"),
    (["train", "--config", "runs"], "config 'runs' is a folder; expected a TOML file"),
    (["train", "--config", "missing.toml"], "config 'missing.toml': no such file"),
    (["train", "--corpus", "missing.txt"], "corpus 'missing.txt' is neither 'shakespeare' nor a file"),
    (["evaluate", "--checkpoint", FAKE], "fake.safetensors is not a readable checkpoint"),
    (["show", "the cat", "--checkpoint", "missing", "-o", "page.html"], "--checkpoint: no model folder or training run at missing"),
    (["show", "the cat", "--checkpoint", "afile", "-o", "page.html"], "--checkpoint: afile is not a readable checkpoint"),
    (["show", "the cat", "--checkpoint", "runs", "-o", "page.html"], "runs is not a complete model folder: no config.json"),
    (["show", "the cat", "--model", "missing", "-o", "page.html"], "--model: no model folder or training run at missing"),
    (["inspect", "the cat", "--token", "cat", "--model", "afile"], "--model: afile is not a readable checkpoint"),
    (["inspect", "the cat", "--token", "cat", "--model", "runs"], "found: scaling.json/"),
    (["inspect", "the cat", "--token", "cat", "--target", BAD_UTF8], "--target is not valid UTF-8"),
    (["show", "the cat", "--generate", "0", "-o", "page.html"], "--generate must be an integer >= 1; got 0"),
    (["generate", "--model", "runs", "--top", "0"], "--top must be an integer >= 1; got 0"),
    (["generate", "--model", "missing"], "--model: no model folder or training run at missing"),
    # options that would be silently ignored, or that name nothing in the model or text
    (["show", "the cat", "--layer", "99", "-o", "page.html"], "layer must lie in [0, 6); got 99"),
    (["show", "the cat", "--token", "dog", "-o", "page.html"], "token 'dog' is not in the text"),
    (["show", "the cat", "--layer", "0", "--head", "12", "-o", "page.html"], "head must lie in [0, 12); got 12"),
    (["show", "the cat", "--head", "1", "-o", "fig.png"], "--head needs --layer"),
    (["show", "the cat", "--compare", "a dog", "-o", "fig.png"], "--compare needs an .html output"),
    (["inspect", "the cat", "--token", "dog"], "token 'dog' is not in the text"),
    (["inspect", "the cat", "--token", "cat", "--key", "the", "--measure", "rollout"], "--key and --measure"),
    (["evaluate", "--checkpoint", FAKE, "-o", "fig.png"], "-o names the alignment picture: it needs --align"),
    (["experiment", "no-such"], "unknown experiment 'no-such'"),
    (["explain", BAD_UTF8], "TEXT is not valid UTF-8"),
    (["explain", "the cat", "--head", "-1"], "--head must be an integer >= 0; got -1"),
    (["explain", "the cat", "-o", "adir.html"], "-o adir.html is a folder; expected a file name"),
    (["explain", "the cat", "-o", "fig.png"], "-o must end in one of ('.html',)"),
    (["explain", "the cat", "--model", "missing"], "--model: no model folder or training run at missing"),
    (["explain", "the cat", "--model", FAKE], "fake.safetensors is not a readable checkpoint"),
    (["explain", "the cat", "--model", "runs"], "runs is not a complete model folder: no config.json"),
    (["explain", "the cat", "--pitfall", "mask"], "--pitfall mask needs a causal model"),
    (["explain", "the cat", "--layer", "6"], "--layer must lie in [0, 5] for this model; got 6"),
    (["explain", "the cat", "--head", "12"], "--head must lie in [0, 11] for this model; got 12"),
    (["explain", "the cat", "--token", "dog"], "--token 'dog' is not in the text"),
    (["serve", "--port", "70000"], "--port must be an integer >= 0 and <= 65535; got 70000"),
    (["serve", "--max-tokens", "0"], "--max-tokens must be an integer >= 1; got 0"),
    (["serve", "--cache-mb", "-1"], "--cache-mb must be an integer >= 1; got -1"),
    (["serve", "--host", " "], "--host must be a non-empty text"),
    (["serve", "--model", "missing"], "--model: no model folder or training run at missing"),
    (["serve", "--model", "afile"], "--model: afile is not a readable checkpoint"),
    (["serve", "--model", "runs"], "runs is not a complete model folder: no config.json"),
]  # fmt: skip


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder holding what a careless command could clobber: a page, a folder named
    like a page, a plain file, a fake checkpoint, a run folder with a folder where an experiment
    writes its JSON."""
    (tmp_path / "adir.html").mkdir()
    (tmp_path / "adir.png").mkdir()
    (tmp_path / "runs" / "scaling.json").mkdir(parents=True)
    (tmp_path / "page.html").write_text("an earlier page")
    (tmp_path / "afile").write_text("precious")
    (tmp_path / FAKE).write_bytes(b"not a checkpoint at all")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder: Path) -> dict[str, object]:
    """Every entry under ``folder``: a file's bytes and mtime, a folder's listing."""
    state: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            state[str(path)] = sorted(p.name for p in path.iterdir())
        else:
            state[str(path)] = (path.read_bytes(), path.stat().st_mtime_ns)
    return state


def one_error_line(err: str, command: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"attnlab {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_every_subcommand_has_bad_arguments_in_the_table():
    assert {argv[0] for argv, _ in BAD} == set(SUBCOMMANDS)


@pytest.mark.parametrize(("argv", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_argument_is_one_line_status_2_and_touches_nothing(argv, fragment, workdir, capsys):
    before = snapshot(workdir)
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err, argv[0])
    assert fragment in line
    assert snapshot(workdir) == before


@pytest.mark.parametrize(
    "argv",
    [["trace", "--seq", "abc"], ["show", "the cat"], ["generate"], ["no-such-command"],
     ["demo", "--top", "1.5"], ["trace", "--no-such-flag"]],
)  # fmt: skip
def test_usage_errors_are_the_usage_then_one_error_line(argv, workdir, capsys):
    before = snapshot(workdir)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("usage: attnlab")
    assert [i for i, line in enumerate(lines) if "error:" in line] == [len(lines) - 1]
    assert snapshot(workdir) == before


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_debug_adds_the_traceback(where, monkeypatch, capsys):
    argv = {"before": ["--debug", "trace", "--seq", "0"], "after": ["trace", "--seq", "0", "--debug"],
            "env": ["trace", "--seq", "0"]}[where]  # fmt: skip
    if where == "env":
        monkeypatch.setenv("ATTNLAB_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "_checks.py" in err
    assert err.splitlines()[-1] == "attnlab trace: error: --seq must be an integer >= 1; got 0"


def test_unexpected_errors_are_one_line_with_their_type(monkeypatch, capsys):
    def fail(args):
        raise RuntimeError("kernel said no\n  on two lines")

    monkeypatch.setattr("attnlab.cli.trace.run", fail)
    assert main(["trace"]) == 2
    line = one_error_line(capsys.readouterr().err, "trace")
    assert line == (
        "attnlab trace: error: RuntimeError: kernel said no on two lines (--debug shows where)"
    )


def test_keyboard_interrupt_anywhere_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("attnlab.cli.show.run", interrupted)
    assert main(["show", "the cat", "-o", "page.html"]) == 130
    assert capsys.readouterr().err == "attnlab show: interrupted\n"


# The real process: exit status and stderr as a shell sees them.


def attnlab(*argv: bytes | str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("ATTNLAB_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "attnlab", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [([b"show", b"\xff\xfe", b"-o", b"page.html"], "TEXT is not valid UTF-8: byte 0xff"),
     (["trace", "--batch", "1000000", "--seq", "1000000"], "needs about"),
     (["show", "the cat", "-o", "adir.html"], "-o adir.html is a folder")],
)  # fmt: skip
def test_real_process_exits_2_with_one_line(argv, fragment, workdir):
    before = snapshot(workdir)
    proc = attnlab(*argv, cwd=workdir)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    command = os.fsdecode(argv[0])
    line = one_error_line(err.decode("utf-8", "backslashreplace"), command)
    assert fragment in line
    assert snapshot(workdir) == before


def test_real_process_ctrl_c_exits_130(workdir):
    proc = attnlab("demo", "--out", "demo", cwd=workdir)
    assert proc.stdout.readline().startswith(b"running")  # past the imports, into the work
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.decode().splitlines()[-1] == "attnlab demo: interrupted"
