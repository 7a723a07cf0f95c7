"""`attnlab show --measure NAME`: figures and the page show the measure, not raw weights."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from attnlab.cli.main import main

TEXT = "the cat sat on the mat"


@pytest.mark.parametrize("measure", ["rollout", "value-norms", "grad-attention"])
def test_show_measure_draws_a_figure_of_the_measure(tmp_path, measure):
    out = tmp_path / "fig.png"
    assert main(["show", TEXT, "--measure", measure, "--layer", "2", "--head", "1",
                 "-o", str(out)]) == 0  # fmt: skip
    image = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert image.std() > 5


def test_show_measure_page_carries_raw_weights_and_the_measure(tmp_path):
    out = tmp_path / "page.html"
    assert main(["show", TEXT, "--measure", "rollout", "--token", "cat", "-o", str(out)]) == 0
    data = json.loads(re.search(r"id='attnlab-data'>(.*?)</script>", out.read_text()).group(1))
    assert list(data["texts"][0]["values"]) == ["attention", "rollout"]
    assert data["start"] == {"measure": "rollout", "token": 2}
    assert data["texts"][0]["values"]["rollout"]["n_layers"] == 1


def test_show_measure_all_needs_a_page(tmp_path, capsys):
    assert main(["show", TEXT, "--measure", "all", "-o", str(tmp_path / "x.png")]) == 2
    assert "--measure all needs an .html output" in capsys.readouterr().err
