import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.cli.main import main
from attnlab.experiments.long_range import (
    LongRangeConfig,
    RecallTask,
    RecurrentLM,
    build,
    matched_hidden,
)
from attnlab.models.params import count_parameters


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 64), st.integers(2, 8), st.integers(1, 6), st.integers(0, 99))
def test_recall_batches_score_one_value_d_positions_before_the_query(d, values, offsets, seed):
    task = RecallTask(d, values=values, offsets=offsets)
    ids, targets = task.batch(torch.Generator().manual_seed(seed), 5)
    assert ids.shape == targets.shape == (5, d + offsets)
    for row_ids, row_targets in zip(ids, targets, strict=True):
        (q,) = (row_targets != -100).nonzero().flatten().tolist()  # exactly one scored position
        assert row_ids[q] == 2 * values  # the query token
        assert row_ids[q - d] == row_targets[q] < values  # the value, d positions back
        others = [int(t) for i, t in enumerate(row_ids) if i not in (q, q - d)]
        assert all(values <= t < 2 * values for t in others)  # the rest is noise


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_rnns_match_the_transformers_parameter_count(kind):
    config, task = LongRangeConfig(), RecallTask(128)
    target = count_parameters(build("transformer", task, config)).total
    rnn = build(kind, task, config, target)
    assert abs(count_parameters(rnn).total - target) / target < 0.01
    assert (
        matched_hidden(kind, count_parameters(rnn).total, task.vocab_size, config.d_model)
        == rnn.rnn.hidden_size
    )


def test_bad_rnn_kind():
    with pytest.raises(ValueError, match="kind must be 'lstm' or 'gru'; got 'rnn'"):
        RecurrentLM("rnn", 10, 4, 4)


def test_quick_run_writes_numbers_and_figure(tmp_path):
    assert main(["experiment", "long-range", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "long-range.json").read_text())
    quick = LongRangeConfig.quick()
    assert set(result["runs"]) == {"transformer", "lstm", "gru"}
    for runs in result["runs"].values():
        assert set(runs) == {str(d) for d in quick.distances}
        for r in runs.values():
            assert 0 <= r["accuracy"] <= 1 and r["seconds_per_epoch"] > 0
            assert len(r["loss_curve"]) == quick.steps
    assert (tmp_path / "long-range.png").stat().st_size > 10_000
