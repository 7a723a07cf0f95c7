"""Tokens of training runs as the terminal prints them and as --token takes them: a character
run's spaces and newlines, a byte-level BPE run's non-ASCII letters (``ĠfuÃ©`` is "fué"), and
the name a run is given by (a link keeps its own). Expected tokens are written by hand."""

from __future__ import annotations

import re

import pytest

from attnlab.cli.main import main

from ..inspection.training_runs import ENGLISH, SPANISH, bpe_lm_run, lm_run, translation_run

FIAT = SPANISH[0]  # "Y dijo Dios: Sea la luz: y fué la luz."


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"lm": lm_run(root / "shk"), "bpe": bpe_lm_run(root / "bpe"),
            "translate": translation_run(root / "tr")}  # fmt: skip


# --- explain on a byte-level BPE run ----------------------------------------------------------


def test_explain_takes_a_non_ascii_token_of_a_bpe_run(runs, tmp_path, capsys):
    out = tmp_path / "fiat.html"
    assert main(["explain", FIAT, "--model", str(runs["bpe"]), "--token", "fué", "-o",
                 str(out)]) == 0  # fmt: skip
    assert "hidden state for 'Ġfué'" in capsys.readouterr().out


def test_explain_shows_a_bpe_runs_tokens_as_letters(runs):
    from attnlab.explain import explain
    from attnlab.explain.load import load_explainable

    model, tokenizer, name = load_explainable(runs["bpe"])
    e = explain(FIAT, model=model, tokenizer=tokenizer, token="fué")
    # 300 tokens: most words in pieces, "fué" whole (its bytes Ã© decoded back to é).
    assert e.tokens == ["Y", "Ġd", "i", "j", "o", "ĠDi", "os", ":", "Ġ", "S", "e", "a", "Ġla",
                        "Ġl", "uz", ":", "Ġy", "Ġfué", "Ġla", "Ġl", "uz", "."]  # fmt: skip
    assert e.start["token"] == 17 and name == "bpe"
    piece = explain("y qué", model=model, tokenizer=tokenizer, token="ué")  # a piece: "q" "ué"
    assert piece.tokens == ["y", "Ġ", "q", "ué"] and piece.start["token"] == 3
    assert "Ã" not in e.render()


# --- what the terminal prints -----------------------------------------------------------------

STEP = re.compile(r"^ +\d+ +\S+ ← \S+ \d\.\d\d(  \S+ \d\.\d\d)*$")  # one line per new token


def test_generate_prints_each_new_token_on_one_line(runs, capsys):
    assert main(["generate", "--model", str(runs["lm"]), "--prompt", "JULIET:\nO Romeo",
                 "--tokens", "20"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    steps = lines[lines.index(next(x for x in lines if x.startswith("what each"))) + 1 :]
    assert len(steps) == 20 and all(STEP.match(line) for line in steps), steps
    assert any(re.match(r"^ +\d+ +↵ ← ", line) for line in steps)  # it writes a newline
    assert any(" ↵ 0." in line for line in steps)  # the prompt's newline, weighed


def test_inspect_prints_a_translations_tokens_as_letters(runs, capsys):
    assert main(["inspect", ENGLISH[0], "--model", str(runs["translate"]), "--target", FIAT,
                 "--token", "Ġfué"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "target: 14 tokens: <bos> Y Ġdijo ĠDios : ĠSea Ġla Ġluz : Ġy Ġfué Ġla Ġluz .\n" in out
    assert 'what "Ġfué" (position 10)' in out and "Ã" not in out


# --- --token: white space and drawn forms -----------------------------------------------------


@pytest.mark.parametrize(("token", "position"), [(" ", 6), ("␣", 6), ("\n", 8), ("↵", 8)])
def test_inspect_takes_a_char_runs_white_space(runs, capsys, token, position):
    text = "ROMEO: O\nRomeo"  # a space at 6, a newline at 8
    assert main(["inspect", text, "--model", str(runs["lm"]), "--token", token]) == 0
    out = capsys.readouterr().out
    assert "GPT: 14 tokens: R O M E O : ␣ O ↵ R o m e o\n" in out
    drawn = {" ": "␣", "\n": "↵"}.get(token, token)
    assert f'what "{drawn}" (position {position}) attends to' in out


def test_show_draws_the_links_of_a_newline(runs, tmp_path, capsys):
    for token in ("\n", "↵"):
        out = tmp_path / "links.svg"
        assert main(["show", "ROMEO:\nO", "--model", str(runs["lm"]), "--token", token,
                     "-o", str(out)]) == 0  # fmt: skip
        assert 'what "↵" attends to' in out.read_text(encoding="utf-8")


# --- names ------------------------------------------------------------------------------------


def test_a_link_to_a_run_keeps_its_name(runs, tmp_path, capsys):
    latest = tmp_path / "latest"
    latest.symlink_to(runs["lm"].parent, target_is_directory=True)
    out = tmp_path / "page.html"
    assert main(["show", "the cat", "--model", str(latest), "-o", str(out)]) == 0
    assert "running latest and capturing" in capsys.readouterr().out
    assert "attnlab: attention on latest" in out.read_text(encoding="utf-8")
    assert main(["explain", "the cat", "--model", str(latest), "-o",
                 str(tmp_path / "e.html")]) == 0  # fmt: skip
    assert "running latest and walking" in capsys.readouterr().out


def test_show_measures_the_drawn_token(runs, tmp_path):
    """--token ↵ with --measure grad-attention: the output is the newline's hidden state (not
    the last token's, where a token not found falls back), named as drawn."""
    import json

    out = tmp_path / "page.html"
    assert main(["show", "ROMEO:\nO", "--model", str(runs["lm"]), "--token", "↵", "--measure",
                 "grad-attention", "-o", str(out)]) == 0  # fmt: skip
    html = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r"id='attnlab-data'>(.*?)</script>", html, re.S)[1])
    (text,) = data["texts"]
    assert '(the norm of "↵"\'s final hidden state)' in text["values"]["grad-attention"]["meaning"]


@pytest.mark.parametrize(("token", "position"), [(" ", 6), ("␣", 6), ("\n", 8), ("↵", 8)])
def test_explain_takes_a_char_runs_white_space(runs, tmp_path, capsys, token, position):
    text = "ROMEO: O\nRomeo"  # a space at 6, a newline at 8
    out = tmp_path / "e.html"
    assert main(["explain", text, "--model", str(runs["lm"]), "--token", token, "-o",
                 str(out)]) == 0  # fmt: skip
    expected = {6: "' '", 8: "'\\n'"}[position]
    assert f"hidden state for {expected}" in capsys.readouterr().out
