"""Figures are drawn for short and long texts, and are pictures (not blank canvases)."""

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.viz import figures
from attnlab.viz.payload import AttentionPayload


def fake_payload(T, L=2, H=4, max_cells=128, seed=0):
    """A payload with real softmax rows, built without a model: the figures only read data."""
    g = torch.Generator().manual_seed(seed)
    pool = -(-T // max_cells)
    P = -(-T // pool)
    maps = torch.softmax(torch.randn(L, H, P, P, generator=g) * 3, -1)
    k = min(T, 8)
    top_w, top_i = (
        torch.softmax(torch.randn(L, H, T, T, generator=g) * 3, -1).topk(k, -1)
        if T <= 256
        else (torch.rand(L, H, T, k, generator=g) / k, torch.randint(0, T, (L, H, T, k)))
    )
    tokens = tuple(f"w{i}" for i in range(T))
    return AttentionPayload(
        "text", tokens, tuple(f"l{i}" for i in range(L)), maps, pool, top_i, top_w
    )


def picture_stats(path):
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    return image.shape, image.std(), (image < 128).mean()


@pytest.mark.parametrize("T", [12, 1200])
def test_every_figure_is_a_non_blank_picture(tmp_path, T):
    p = fake_payload(T)
    paths = [
        figures.heatmap(p, 1, 2, tmp_path / "heat.png"),
        figures.head_grid(p, 0, tmp_path / "grid.png"),
        figures.model_grid(p, tmp_path / "model.png"),
        figures.token_links(p, 0, "w5", tmp_path / "links.png", heads=[0, 1]),
        figures.qkv_flow(tmp_path / "qkv.png"),
    ]
    for path in paths:
        (h, w), spread, dark = picture_stats(path)
        assert h > 200 and w > 200, path
        assert spread > 5, f"{path.name} looks blank (pixel std {spread:.1f})"
        assert 0.001 < dark < 0.95, path


def test_long_text_labels_thin_out(tmp_path):
    p = fake_payload(1200)
    assert p.pool == 10 and p.maps.shape[-1] == 120
    ticks, names = figures._labels(p, 60)
    assert len(ticks) <= 60 and names[1] == "w20"


def test_svg_output(tmp_path):
    path = figures.heatmap(fake_payload(10), 0, 0, tmp_path / "heat.svg")
    assert path.read_text().lstrip().startswith("<?xml") and "<svg" in path.read_text()


def test_bad_layer_head_and_token_are_clear_errors(tmp_path):
    p = fake_payload(10)
    with pytest.raises(ValueError, match=r"layer must lie in \[0, 2\); got 5"):
        figures.heatmap(p, 5, 0, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"head must lie in \[0, 4\); got 9"):
        figures.heatmap(p, 0, 9, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"token 'cat' is not in the text"):
        figures.token_links(p, 0, "cat", tmp_path / "x.png")


def test_payload_rejects_inconsistent_shapes():
    p = fake_payload(10)
    with pytest.raises(
        ValueError, match=r"maps must be \(L, H, P, Ps\) with P = ceil\(T / pool\) = 10"
    ):
        AttentionPayload(
            "t", p.tokens, p.layers, p.maps[..., :5, :5], 1, p.top_indices, p.top_weights
        )


@pytest.mark.slow
def test_figures_from_a_real_capture_of_a_long_text(tmp_path):
    """≥ 1000 tokens through the real path: model → capture → pooled AttentionMap → figures."""
    from attnlab import Encoder, EncoderConfig, capture
    from attnlab.inspection.report import Report

    n = 1100
    model = Encoder(EncoderConfig(vocab_size=50, max_len=n, n_layers=2, n_heads=4, d_model=32,
                                  d_ff=64)).eval()  # fmt: skip
    with torch.no_grad(), capture(model) as maps:
        model(torch.randint(0, 50, (1, n)))
    report = Report("long", [f"t{i}" for i in range(n)], dict(maps), "Encoder")
    payload = AttentionPayload.from_report(report)
    assert payload.pool == 9 and payload.maps.shape == (2, 4, 123, 123)
    torch.testing.assert_close(payload.maps.sum(-1).mean(), torch.tensor(1 / 9), atol=1e-3, rtol=0)
    for path in (figures.heatmap(payload, 1, 3, tmp_path / "h.png"),
                 figures.model_grid(payload, tmp_path / "m.png"),
                 figures.token_links(payload, 0, "t500", tmp_path / "l.png")):  # fmt: skip
        (h, w), spread, _ = picture_stats(path)
        assert h > 200 and w > 200 and spread > 5
