import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import attnlab
import attnlab.cli
from attnlab.cli.main import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"attnlab {attnlab.__version__}"


def registered_commands():
    """Every subcommand the parser knows, read from the parser itself (not a list kept here)."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {a.dest: a.help for a in sub._choices_actions}
    return {name: (p, summaries.get(name)) for name, p in sub.choices.items()}


def test_every_module_in_the_cli_package_is_a_registered_command():
    modules = {p.stem for p in Path(attnlab.cli.__file__).parent.glob("*.py")}
    helpers = {m for m in modules if m.startswith("_")} | {"main"}  # _checks: shared by all
    assert set(registered_commands()) == modules - helpers


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for command, (_, summary) in registered_commands().items():
        assert f"{command} {' '.join(summary.split())}" in out


@pytest.mark.parametrize("command", sorted(registered_commands()))
def test_every_command_has_help_that_explains(command, capsys):
    parser, summary = registered_commands()[command]
    assert summary and summary.strip()  # the one-line help in `attnlab --help`
    assert parser.description and len(parser.description.split()) >= 5  # what it does
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: attnlab {command}")
    assert " ".join(parser.description.split()[:5]) in " ".join(out.split())


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
