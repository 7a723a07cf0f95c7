"""`--model` naming a training run of `attnlab train` (its checkpoint.safetensors or its folder) in
show, generate, inspect, serve and explain, run in-process on tiny random-weight runs."""

from __future__ import annotations

import json
import re

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from attnlab.cli.main import main
from attnlab.data.tokenizers import tokenizer_from_json
from attnlab.inspection import runs as run_module
from attnlab.train.checkpoint import load_training
from attnlab.train.tasks import collate
from attnlab.viz.tokens import shown

from ..inspection.training_runs import ENGLISH, SPANISH, lm_run, translation_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"lm": lm_run(root / "shk"), "translate": translation_run(root / "tr")}


def page_data(path):
    html = path.read_text(encoding="utf-8")
    data = re.search(r"id='attnlab-data'>(.*?)</script>", html, re.S)[1]
    return json.loads(data)


def test_show_generate_draws_the_runs_generation_steps(runs, tmp_path, capsys):
    from attnlab.inspection.pretrained import load_model_path
    from attnlab.inspection.report import generate

    out, prompt = tmp_path / "page.html", "JULIET:\nO Romeo"
    assert main(["show", prompt, "--model", str(runs["lm"]), "--generate", "20",
                 "-o", str(out)]) == 0  # fmt: skip
    assert "wrote" in capsys.readouterr().out
    (text,) = page_data(out)["texts"]
    model, tokenizer = load_model_path(runs["lm"])
    report = generate(prompt, model=model, tokenizer=tokenizer, max_new_tokens=20)
    assert text["tokens"] == [shown(t) for t in report.tokens]
    assert text["tokens"][7] == "↵" and text["tokens"][9] == "␣"  # visible white space
    steps = text["steps"]
    assert [s["token"] for s in steps] == [shown(t) for t in report.generated]
    assert "↵" in [s["token"] for s in steps]  # this run generates a newline: drawn visibly
    assert [s["row"] for s in steps] == list(range(len(prompt) - 1, len(prompt) + 19))
    assert "attnlab: attention on shk" in out.read_text(encoding="utf-8")  # the run's name


def test_show_target_draws_the_source_target_panels(runs, tmp_path):
    from attnlab.inspection.pretrained import load_model_path
    from attnlab.inspection.report import inspect

    out = tmp_path / "page.html"
    assert main(["show", ENGLISH[0], "--model", str(runs["translate"]), "--target", SPANISH[0],
                 "-o", str(out)]) == 0  # fmt: skip
    texts = page_data(out)["texts"]
    assert [t["role"] for t in texts] == ["encoder", "decoder", "cross"]
    model, tokenizer = load_model_path(runs["translate"])
    report = inspect(ENGLISH[0], model=model, tokenizer=tokenizer, target=SPANISH[0])
    cross = texts[2]
    assert cross["tokens"] == [shown(t, byte_level=True) for t in report.target_tokens]
    assert cross["key_tokens"] == [shown(t, byte_level=True) for t in report.tokens]
    assert cross["tokens"][0] == "<bos>" and "Ġfué" in cross["tokens"]  # UTF-8 bytes decoded


def test_generate_model_prints_what_each_new_token_came_from(runs, capsys):
    from attnlab.inspection.pretrained import load_model_path
    from attnlab.inspection.report import generate

    assert main(["generate", "--model", str(runs["translate"]), "--prompt", ENGLISH[1],
                 "--tokens", "4", "--top", "2"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    model, tokenizer = load_model_path(runs["translate"])
    report = generate(ENGLISH[1], model=model, tokenizer=tokenizer, max_new_tokens=4)
    assert f"EncoderDecoder: {ENGLISH[1]!r} → {report.target!r}" in out
    assert "(source tokens; mean over heads" in out
    lines = [line for line in out.splitlines() if "←" in line]
    assert len(lines) == len(report.generated) and all(line.count(" 0.") == 2 for line in lines)


def test_inspect_model_takes_a_runs_checkpoint_file(runs, capsys):
    assert main(["inspect", "the cat sat", "--model", str(runs["lm"]), "--token", "c"]) == 0
    assert "GPT: 11 tokens: t h e ␣ c a t ␣ s a t\n" in capsys.readouterr().out


def test_serve_offers_a_run_under_its_folder_name(runs):
    from attnlab.serve.models import load_models
    from attnlab.serve.results import Request, compute, tile

    lm, translation = load_models([runs["lm"], runs["translate"].parent], minilm=False)
    assert (lm.name, lm.encoder_decoder, lm.max_positions) == ("shk", False, 64)
    assert (translation.name, translation.encoder_decoder) == ("tr", True)
    assert lm.count_tokens("ROMEO:\n") == 7
    target = translation.tokenizer.target(text_target=SPANISH[0])["input_ids"]
    # The decoder reads <bos> then the target, as training's collate feeds it.
    src_tok, tgt_tok = run_tokenizers(runs["translate"])
    pair = (src_tok.encode(ENGLISH[0]), tgt_tok.encode(SPANISH[0]))
    fed = collate([pair], src_tok, tgt_tok)["tgt_ids"]
    assert translation.count_tokens(SPANISH[0], target=True) == fed.shape[1] == len(target) + 1
    # A request with a target: the three panels, and exact tiles of the cross-attention one.
    result = compute(Request(1, ENGLISH[0], target=SPANISH[0]), translation, tiles_url="/t")
    assert [p.role for _, p in result.panels] == ["encoder", "decoder", "cross"]
    cross = result.reports[0].maps["decoder.layers.1.cross_attn"].dense()[0, 1]  # (T, S)
    T, S = cross.shape
    assert tuple(cross.shape) == (len(target) + 1, len(result.reports[0].tokens))
    torch.testing.assert_close(tile(result, 2, 1, 1, (0, T), (0, S)), cross)


def run_tokenizers(checkpoint):
    """A translation run's own attnlab tokenizers (source, target), from its training state."""
    both = json.loads(load_training(checkpoint).tokenizer_json)
    return tokenizer_from_json(both["src"]), tokenizer_from_json(both["tgt"])


def with_task(checkpoint, task, out):
    """A copy of ``checkpoint`` whose training config names ``task``."""
    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    training = json.loads(meta["training"])
    training["config"]["task"] = task
    safetensors.torch.save_file(tensors, out, metadata={**meta, "training": json.dumps(training)})
    return out


@pytest.mark.parametrize("command", [
    ["show", "hi", "-o", "page.html"], ["inspect", "hi", "--token", "h"],
    ["generate", "--prompt", "hi"], ["serve"], ["explain", "hi"],
])  # fmt: skip
def test_a_run_of_an_unknown_task_and_a_missing_file_are_refused_naming_model(
    runs, tmp_path, capsys, monkeypatch, command
):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_module, "load_run", lambda *a: pytest.fail("a model was loaded"))
    unknown = with_task(runs["lm"], "classify", tmp_path / "classify.safetensors")
    assert main([*command, "--model", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "--model: " in err and "task must be one of ['lm', 'translate']; got 'classify'" in err
    assert main([*command, "--model", str(tmp_path / "run" / "checkpoint.safetensors")]) == 2
    err = capsys.readouterr().err
    assert f"--model: no model folder or training run at {tmp_path}/run/checkpoint" in err
    assert not (tmp_path / "page.html").exists()


def test_explain_refuses_a_translation_run_by_name_before_loading_it(runs, capsys, monkeypatch):
    monkeypatch.setattr(run_module, "load_run", lambda *a: pytest.fail("a model was loaded"))
    assert main(["explain", "hi", "--model", str(runs["translate"])]) == 2
    err = capsys.readouterr().err
    assert f"--model {runs['translate']} is a 'translate' training run; explain supports" in err
