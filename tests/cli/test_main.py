import subprocess
import sys
from pathlib import Path

import pytest

import attnlab
from attnlab.cli.main import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"attnlab {attnlab.__version__}"


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("trace", "demo"):
        assert command in out


def test_trace_command_prints_shapes(capsys):
    assert main(["trace", "--d-model", "128", "--heads", "4", "--seq", "10"]) == 0
    out = capsys.readouterr().out
    assert "heads (2, 4, 10, 32)" in out and "128 → 4×32 → 128" in out
    assert "parameters: 66,048 (one head of size 128 would have 66,048)" in out


def test_trace_command_reports_bad_heads_clearly(capsys):
    assert main(["trace", "--d-model", "128", "--heads", "5"]) == 2
    assert "nearest valid head counts: [4, 8]" in capsys.readouterr().err


def test_installed_console_script_runs():
    script = Path(sys.executable).with_name("attnlab")
    done = subprocess.run(
        [script, "trace", "--need-weights", "--causal"], capture_output=True, text=True, check=True
    )
    assert "weights (2, 4, 10, 10)" in done.stdout
