import json

from attnlab.cli.main import main
from attnlab.experiments.scaling import ScalingConfig, score_statistics


def test_unscaled_scores_saturate_the_softmax():
    config = ScalingConfig(samples=300)
    scaled = score_statistics(1024, True, config)
    unscaled = score_statistics(1024, False, config)
    assert 0.8 < scaled["score_variance"] < 1.2  # q·k/√d_k keeps unit variance
    assert 800 < unscaled["score_variance"] < 1300  # q·k has variance d_k
    assert unscaled["largest_weight"] > 0.8 > scaled["largest_weight"]
    assert unscaled["entropy_nats"] < 0.5 < scaled["entropy_nats"]
    assert unscaled["grad_norm_scores"] < scaled["grad_norm_scores"] / 2  # the softmax gradient


def test_quick_run_writes_numbers_and_figure(tmp_path, capsys):
    assert main(["experiment", "scaling", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "scaling.json").read_text())
    assert set(result["statistics"]) == {"16", "64", "256", "1024"}
    assert len(result["loss_curves"]["scaled"]) == ScalingConfig.quick().steps
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out


def test_list_and_unknown_experiment(capsys):
    assert main(["experiment", "--list"]) == 0
    assert "scaling" in capsys.readouterr().out
    assert main(["experiment", "nope"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
