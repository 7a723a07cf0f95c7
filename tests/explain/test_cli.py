"""`attnlab explain` on the command line: bad arguments are one line and exit 2 before any model
loads; a good run writes the page and says how close its last card is to the model."""

import pytest
import torch

from attnlab.cli.main import main

from .conftest import SENTENCE


@pytest.fixture
def no_model_loads(monkeypatch):
    from attnlab.explain import load

    monkeypatch.setattr(load, "load_explainable", lambda *a: pytest.fail("a model was loaded"))


@pytest.mark.parametrize(("args", "message"), [
    (["   "], "TEXT must be a non-empty text; got ' '"),
    (["x", "--layer", "-1"], "--layer must be an integer >= 0; got -1"),
    (["x", "--head", "-2"], "--head must be an integer >= 0; got -2"),
    (["x", "--token", ""], "--token must be a non-empty text; got ''"),
    (["x", "-o", "page.png"], "-o must end in one of ('.html',); got 'page.png'"),
    (["x", "--model", "/nonexistent/folder"], "--model: no model folder or training run at /nonexistent/folder"),
    (["x", "--position", "-1"], "--position must be an integer >= 0; got -1"),
    (["x", "--pitfall", "mask"], "--pitfall mask needs a causal model (--model: an attnlab GPT); "
                                 "in an encoder such as the default all-MiniLM-L6-v2 every token"),
])  # fmt: skip
def test_bad_arguments_fail_in_one_line_before_any_model_loads(args, message, capsys, tmp_path,
                                                               monkeypatch, no_model_loads):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["explain", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"attnlab explain: error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_pitfall_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "x", "--pitfall", "softmax"])
    assert exit_.value.code == 2
    assert "error: argument --pitfall: invalid choice: 'softmax'" in capsys.readouterr().err


def test_a_layer_beyond_the_model_names_its_range(capsys, tmp_path):
    assert main(["explain", "the cat", "--layer", "6", "-o", str(tmp_path / "e.html")]) == 2
    assert "--layer must lie in [0, 5] for this model; got 6" in capsys.readouterr().err
    assert not (tmp_path / "e.html").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["the cat", "--head", "12"], "--head must lie in [0, 11] for this model; got 12"),
    (["the the cat", "--token", "the"], "--token 'the' occurs at positions [1, 2]; choose one "
                                        "with --position"),
    (["the cat", "--position", "4"], "--position must lie in [0, 3] for this text; got 4"),
    (["word " * 513], "TEXT is 515 tokens; this model reads at most 512"),
])  # fmt: skip
def test_arguments_checked_against_the_model_and_text_name_the_flag(args, message, capsys,
                                                                     tmp_path):  # fmt: skip
    assert main(["explain", *args, "-o", str(tmp_path / "e.html")]) == 2
    assert capsys.readouterr().err == f"attnlab explain: error: {message}\n"
    assert not (tmp_path / "e.html").exists()


def test_token_and_position_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "the cat", "--token", "cat", "--position", "1"])
    assert exit_.value.code == 2
    assert "argument --position: not allowed with argument --token" in capsys.readouterr().err


def test_the_default_run_writes_the_page(capsys, tmp_path):
    out = tmp_path / "explain.html"
    assert main(["explain", SENTENCE, "--layer", "1", "--head", "2", "--position", "10",
                 "-o", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "the last card equals the model's hidden state for 'it': max |difference|" in printed
    assert f"wrote {out}" in printed
    html = out.read_text()
    assert "attnlab explain: all-MiniLM-L6-v2, layer 1" in html and "http" not in html


def test_an_attnlab_gpt_checkpoint_folder_with_the_mask_pitfall(capsys, tmp_path):
    from tests.inspection.model_folders import byte_tokenizer

    import attnlab
    from attnlab.models.checkpoint import save_model

    gpt = attnlab.GPT(attnlab.GPTConfig(vocab_size=256, max_len=64, n_layers=2, n_heads=4,
                                        d_model=64, positional="sinusoidal")).eval()  # fmt: skip
    folder = save_model(gpt, tmp_path / "gpt",
                        tokenizer_json=byte_tokenizer().backend_tokenizer.to_str())  # fmt: skip
    out = tmp_path / "mask.html"
    assert main(["explain", "the cat sat", "--model", str(folder), "--layer", "1",
                 "--pitfall", "mask", "-o", str(out)]) == 0  # fmt: skip
    assert out.is_file() and "wrote" in capsys.readouterr().out
    torch.manual_seed(0)


def test_a_training_runs_checkpoint_file(capsys, tmp_path):
    """`attnlab train`'s checkpoint.safetensors (weights + character tokenizer in its metadata)
    explained directly; the page's last card is that GPT's hidden state."""
    import attnlab
    from attnlab.explain import explain
    from attnlab.explain.load import load_explainable
    from attnlab.train.config import TrainConfig
    from attnlab.train.trainer import train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 200)
    config = TrainConfig(corpus=str(corpus), n_layers=2, n_heads=2, d_model=16, d_ff=32,
                         context=16, batch=4, steps=2, eval_interval=2, eval_batches=1,
                         out_dir=str(tmp_path / "run"))  # fmt: skip
    checkpoint = train(config).out_dir / "checkpoint.safetensors"
    out = tmp_path / "run.html"
    assert main(["explain", "the mat", "--model", str(checkpoint), "--layer", "1", "--token",
                 "m", "-o", str(out)]) == 0  # fmt: skip
    assert "hidden state for 'm'" in capsys.readouterr().out
    model, tokenizer, name = load_explainable(checkpoint)
    e = explain("the mat", model=model, tokenizer=tokenizer, layer=1)
    ids = torch.tensor([tokenizer.encode("the mat")])
    _, cache = attnlab.run_with_cache(model, ids)
    torch.testing.assert_close(e.final, cache["layers.1.hook_resid_post"][0], atol=1e-5, rtol=0)
    assert name == "run" and e.tokens == list("the mat")
