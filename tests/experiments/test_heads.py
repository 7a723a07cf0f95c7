import json
import math

import torch

from attnlab.cli.main import main
from attnlab.experiments.common import head_distance
from attnlab.experiments.heads import HeadsConfig


def test_head_distance_is_zero_for_identical_and_one_for_disjoint_heads():
    w = torch.softmax(torch.randn(2, 1, 5, 5), -1)
    assert head_distance(w.expand(2, 3, 5, 5)) == 0.0
    eye = torch.eye(4)
    disjoint = torch.stack((eye, eye.roll(1, 0)))[None]  # (1, 2, 4, 4), one-hot rows
    assert head_distance(disjoint) == 1.0
    assert math.isnan(head_distance(w))
    rows = torch.zeros(1, 4, dtype=torch.bool)
    rows[0, 2] = True  # only query row 2: the two heads differ there
    same_elsewhere = torch.stack((eye, eye))[None].clone()
    same_elsewhere[0, 1, 2] = eye[3]
    assert head_distance(same_elsewhere, rows) == 1.0
    assert head_distance(same_elsewhere) == 0.25


def test_quick_run_writes_numbers_and_figure(tmp_path):
    assert main(["experiment", "heads", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "heads.json").read_text())
    quick = HeadsConfig.quick()
    for task in ("shakespeare", "recall"):
        counts = {c["total"] for c in result["parameters"][task].values()}
        assert len(counts) == 1  # every H has exactly the same parameters
        runs = result["runs"][task]
        assert set(runs) == {str(h) for h in quick.heads}
        assert runs["1"]["head_distance"] is None  # one head: nothing to compare
        assert 0 <= runs["2"]["head_distance"] <= 1
        assert all(len(s["loss_curve"]) for s in runs["2"]["per_seed"])
    assert len(result["example"]["weights"]) == max(quick.heads)
    assert (tmp_path / "heads.png").stat().st_size > 10_000
