import json

import numpy as np
import pytest
from PIL import Image

from attnlab.cli.main import main


@pytest.mark.slow
def test_demo_writes_page_figures_and_the_animal_table(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "because it was tired" in out and "because it was wide" in out
    assert 'heads where "it" weighs "animal" most over "street"' in out
    record = json.loads((tmp_path / "it_attention.json").read_text())
    it_to_animal = np.array(record[0]["it_to_animal"])  # (layers, heads)
    assert it_to_animal.shape == (6, 12)
    # The real model (not a programmed rule): some head puts most of "it"'s weight on "animal".
    assert it_to_animal.max() > 0.5
    page = (tmp_path / "attention.html").read_text()
    assert "because it was wide" in page and "<script src=" not in page  # self-contained
    for name in ("heatmap", "heads", "model", "links_tired", "links_wide", "qkv_flow"):
        image = np.asarray(Image.open(tmp_path / f"{name}.png").convert("L"), dtype=float)
        assert image.std() > 5, name
