"""A training run's lengths and alphabet checked before its weights load, with the flags and
numbers named: the tiny runs of tests/inspection/training_runs.py have 64 positions (their
config's context), the char run an alphabet without digits or accents. Every expected number
below is written from those facts: 64 positions, a translation's source and new tokens cut to
context − 1 = 63 as training cuts them, and its decoder reading <bos> first."""

from __future__ import annotations

import pytest

from attnlab.cli.main import main
from attnlab.inspection import runs as run_module

from ..inspection.training_runs import SIZES, lm_run, translation_run

assert SIZES["context"] == 64  # the numbers below are written for it


# Texts of a known number of tokens in the translation run (" cat" and " luz" are one token
# each of its English and Spanish BPE: "Ġcat", "Ġluz").
def source(n: int) -> str:
    return " cat" * n


def target(n: int) -> str:
    return " luz" * n


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"lm": lm_run(root / "shk"), "translate": translation_run(root / "tr")}


@pytest.fixture
def not_loaded(monkeypatch):
    monkeypatch.setattr(run_module, "load_run", lambda *a: pytest.fail("a model was loaded"))


def error(capsys) -> str:
    captured = capsys.readouterr()
    assert "running" not in captured.out  # refused before the model runs
    return captured.err.strip().splitlines()[-1]


# --- generate / show --generate: new tokens --------------------------------------------------


def test_generate_refuses_more_tokens_than_the_runs_positions(runs, capsys, not_loaded):
    cases = [
        (["--model", str(runs["lm"]), "--prompt", "ROMEO:", "--tokens", "300"],
         "--prompt (6 tokens) + --tokens 300 > 64 positions of shk (at most 58 new tokens)"),
        (["--model", str(runs["lm"]), "--prompt", "ROMEO:", "--tokens", "59"],
         "--prompt (6 tokens) + --tokens 59 > 64 positions of shk (at most 58 new tokens)"),
        (["--model", str(runs["translate"]), "--prompt", "the cat", "--tokens", "300"],
         "--tokens 300: tr writes at most 63 tokens"),
        (["--model", str(runs["translate"]), "--prompt", "the cat", "--tokens", "64"],
         "--tokens 64: tr writes at most 63 tokens"),
        (["--model", str(runs["lm"]), "--prompt", "a" * 64],
         "--prompt (64 tokens) leaves none of the 64 positions of shk to generate into"),
    ]  # fmt: skip
    for args, expected in cases:
        assert main(["generate", *args]) == 2
        assert error(capsys) == f"attnlab generate: error: {expected}"


def test_generate_without_tokens_fills_the_positions_left(runs, capsys):
    assert main(["generate", "--model", str(runs["lm"]), "--prompt", "ROMEO:"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "←" in line]
    assert len(lines) == 64 - 6
    assert main(["generate", "--model", str(runs["lm"]), "--prompt", "ROMEO:", "--tokens",
                 "58"]) == 0  # fmt: skip
    assert len([line for line in capsys.readouterr().out.splitlines() if "←" in line]) == 58


def test_generate_translates_up_to_63_tokens_by_default(runs, capsys, monkeypatch):
    from attnlab.inspection import report as report_module

    asked, original = [], report_module.generate

    def spy(prompt, *, max_new_tokens, **kwargs):
        asked.append(max_new_tokens)
        return original(prompt, max_new_tokens=max_new_tokens, **kwargs)

    monkeypatch.setattr(report_module, "generate", spy)
    assert main(["generate", "--model", str(runs["translate"]), "--prompt", "the cat"]) == 0
    assert asked == [63]  # context − 1, its most: not the API's default of 20, nor 300
    lines = [line for line in capsys.readouterr().out.splitlines() if "←" in line]
    assert 1 <= len(lines) <= 63


def test_show_generate_refuses_before_loading(runs, tmp_path, capsys, not_loaded):
    out = tmp_path / "page.html"
    cases = [
        ([str(runs["lm"]), "the cat sat", "60"],
         "TEXT (11 tokens) + --generate 60 > 64 positions of shk (at most 53 new tokens)"),
        ([str(runs["translate"]), "the cat", "64"], "--generate 64: tr writes at most 63 tokens"),
    ]  # fmt: skip
    for (model, text, n), expected in cases:
        assert main(["show", text, "--model", model, "--generate", n, "-o", str(out)]) == 2
        assert error(capsys) == f"attnlab show: error: {expected}"
    assert not out.exists()


# --- sources and targets ---------------------------------------------------------------------


def test_a_translation_reads_sources_of_63_tokens_as_training_cut_them(runs, capsys, not_loaded):
    model = str(runs["translate"])
    assert main(["inspect", source(64), "--model", model, "--token", "Ġcat"]) == 2
    assert error(capsys) == ("attnlab inspect: error: TEXT is 64 tokens; tr reads at most 63 "
                             "source tokens (--truncate keeps the first ones)")  # fmt: skip
    assert main(["generate", "--model", model, "--prompt", source(64)]) == 2
    assert (
        error(capsys) == "attnlab generate: error: --prompt is 64 tokens; tr reads at most 63 "
        "source tokens"
    )


def test_a_char_run_reads_texts_of_64_tokens(runs, capsys, not_loaded):
    assert main(["inspect", "a" * 65, "--model", str(runs["lm"]), "--token", "a"]) == 2
    assert error(capsys) == ("attnlab inspect: error: TEXT is 65 tokens; shk reads at most 64 "
                             "positions (--truncate keeps the first ones)")  # fmt: skip


def test_a_target_counts_its_start_token(runs, capsys, not_loaded):
    assert main(["inspect", "the cat", "--model", str(runs["translate"]), "--token", "the",
                 "--target", target(64)]) == 2  # fmt: skip
    assert error(capsys) == ("attnlab inspect: error: --target is 65 tokens with the start "
                             "token; tr takes at most 64")  # fmt: skip


def test_the_longest_source_and_target_run(runs, capsys):
    assert main(["inspect", source(63), "--model", str(runs["translate"]), "--token", "Ġluz",
                 "--target", target(63)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "EncoderDecoder: 63 tokens:" in out and "target: 64 tokens: <bos> Ġluz" in out


def test_the_python_api_refuses_a_long_source_and_target_by_name(runs):
    from attnlab.inspection.pretrained import load_model_path
    from attnlab.inspection.report import inspect

    model, tokenizer = load_model_path(runs["translate"])
    with pytest.raises(ValueError, match=r"^text is 64 tokens long; EncoderDecoder takes at most "
                       r"63 positions"):  # fmt: skip
        inspect(source(64), model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"^target is 65 tokens with the start token; the model "
                       r"takes at most 64$"):  # fmt: skip
        inspect("the cat", model=model, tokenizer=tokenizer, target=target(64))
    report = inspect(source(63), model=model, tokenizer=tokenizer, target=target(63))
    assert (len(report.tokens), len(report.target_tokens)) == (63, 64)


def test_serve_counts_a_target_with_its_start_token(runs):
    from attnlab.serve.app import _check_tokens
    from attnlab.serve.models import load_models
    from attnlab.serve.results import Request, compute

    (served,) = load_models([runs["translate"]], minilm=False)
    with pytest.raises(ValueError) as err:
        _check_tokens(Request(0, "the cat", target=target(64)), served, 4096)
    assert str(err.value) == ("target is 65 tokens long with the decoder's start token; at most 64 "
                              "are taken (the positions of tr)")  # fmt: skip
    with pytest.raises(ValueError) as err:
        _check_tokens(Request(0, source(64)), served, 4096)
    assert str(err.value) == "text is 64 tokens long; at most 63 are taken (the positions of tr)"
    request = Request(0, source(63), target=target(63))
    _check_tokens(request, served, 4096)  # the longest pair: taken, and computed
    result = compute(request, served, tiles_url="/t")
    assert len(result.reports[0].target_tokens) == 64


# --- the alphabet ----------------------------------------------------------------------------


def test_characters_outside_a_char_runs_alphabet_are_named_before_loading(runs, tmp_path, capsys,
                                                                          not_loaded):  # fmt: skip
    model = str(runs["lm"])
    commands = [
        (["inspect", "thé cat", "--model", model, "--token", "c"], "TEXT"),
        (["show", "the cat", "--compare", "thé cat", "--model", model, "-o",
          str(tmp_path / "p.html")], "--compare"),
        (["generate", "--model", model, "--prompt", "thé cat"], "--prompt"),
        (["explain", "thé cat", "--model", model, "-o", str(tmp_path / "e.html")], "TEXT"),
    ]  # fmt: skip
    for args, flag in commands:
        assert main(args) == 2
        assert error(capsys).endswith(f"error: {flag}: characters not in shk's alphabet: ['é']")
    assert main(["inspect", "0123456789 é€", "--model", model, "--token", "c"]) == 2
    assert error(capsys).endswith(
        "error: TEXT: characters not in shk's alphabet: ['0', '1', '2', '3', '4', '5', '6', '7', "
        "'8', '9'] (and 2 more)"
    )


def test_generate_checkpoint_cuts_a_source_to_63_tokens_as_training_did(runs, monkeypatch):
    from attnlab.models.encoder_decoder import EncoderDecoder
    from attnlab.train.text_generation import generate_text

    seen, original = [], EncoderDecoder.generate

    def spy(self, src, max_new_tokens, *args, **kwargs):
        seen.append((src.shape[1], max_new_tokens))
        return original(self, src, max_new_tokens, *args, **kwargs)

    monkeypatch.setattr(EncoderDecoder, "generate", spy)
    with pytest.warns(UserWarning, match="prompt is 80 tokens; the model reads at most 63 source "
                                         "tokens .*: translating the first 63"):  # fmt: skip
        generate_text(runs["translate"], source(80))
    assert seen == [(63, 63)]  # the source cut, and at most 63 tokens after <bos>


def test_generate_checkpoint_refuses_a_source_it_would_cut_before_loading(runs, capsys,
                                                                         monkeypatch):  # fmt: skip
    """As --model does: the library call cuts with a warning, the command refuses."""
    from attnlab.cli import generate

    with monkeypatch.context() as patch:
        patch.setattr(generate, "generate_text", lambda *a, **k: pytest.fail("it generated"))
        assert main(["generate", "--checkpoint", str(runs["translate"]),
                     "--prompt", source(64)]) == 2  # fmt: skip
    assert error(capsys).endswith("error: --prompt is 64 tokens; tr reads at most 63 source tokens")
    assert main(["generate", "--checkpoint", str(runs["translate"]), "--prompt", source(63),
                 "--tokens", "2"]) == 0  # fmt: skip


def test_generate_checkpoint_translates_as_generate_model_does(runs, capsys, monkeypatch):
    """One rule for a translation run's --tokens, whichever flag names the run: at most
    context − 1 = 63, refused naming the flag before loading; honoured when given."""
    from attnlab.models.encoder_decoder import EncoderDecoder

    for flag in ("--checkpoint", "--model"):
        assert main(["generate", flag, str(runs["translate"]), "--prompt", "the cat",
                     "--tokens", "64"]) == 2  # fmt: skip
        assert error(capsys) == "attnlab generate: error: --tokens 64: tr writes at most 63 tokens"
    seen, original = [], EncoderDecoder.generate

    def spy(self, src, max_new_tokens, *args, **kwargs):
        seen.append(max_new_tokens)
        return original(self, src, max_new_tokens, *args, **kwargs)

    monkeypatch.setattr(EncoderDecoder, "generate", spy)
    for tokens in ([], ["--tokens", "5"]):
        assert main(["generate", "--checkpoint", str(runs["translate"]), "--prompt", "the cat",
                     *tokens]) == 0  # fmt: skip
    assert seen == [63, 5]


def test_generate_counts_a_runs_prompt_once(runs, capsys, monkeypatch):
    """--prompt is tokenised once for the run's checks: the default --tokens, its refusal and
    the positions check share the count."""
    from attnlab.cli._model import Run

    calls, original = [], Run.tokens

    def spy(self, flag, text):
        calls.append(flag)
        return original(self, flag, text)

    monkeypatch.setattr(Run, "tokens", spy)
    assert main(["generate", "--model", str(runs["lm"]), "--prompt", "a" * 64]) == 2
    assert error(capsys).endswith("leaves none of the 64 positions of shk to generate into")
    assert calls == ["--prompt"]
    calls.clear()
    assert main(["generate", "--model", str(runs["lm"]), "--prompt", "ROMEO:"]) == 0
    assert calls == ["--prompt"]
