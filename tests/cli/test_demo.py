import json

import pytest

from attnlab.cli.main import main


@pytest.mark.slow
def test_demo_runs_on_real_minilm_and_finds_the_animal_heads(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "because it was tired" in out and "because it was wide" in out
    record = json.loads((tmp_path / "it_attention.json").read_text())
    weights = record[0]["weights_it_to_animal_street"]  # [layer][head][animal, street]
    assert len(weights) == 6 and len(weights[0]) == 12
    # The real model (not a programmed rule): some head puts most of "it"'s weight on "animal".
    assert max(h[0] for layer in weights for h in layer) > 0.5
