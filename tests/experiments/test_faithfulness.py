import json

import pytest
import torch
from torch import nn

from attnlab.cli.main import main
from attnlab.experiments.faithfulness import (
    MEASURES,
    CopyTask,
    Examples,
    FaithfulnessConfig,
    evaluate,
    lm_folds,
    ranks_first,
)
from attnlab.experiments.long_range import RecallTask
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT

TASK = RecallTask(6, values=4, offsets=3)  # value tokens 0–3, noise 4–7, query 8


def hand_built(looks: bool) -> GPT:
    """Two layers of two heads. Layer 0 attends uniformly and adds nothing (W_O = 0). In layer
    1 with ``looks``, head 0's query token puts all its weight on the value token (score 200
    against 0); head 1 (and head 0 without ``looks``) attends uniformly. Embeddings are ±1 on a
    feature per token kind (LayerNorm turns them into ±2); layer 1's values and output
    projection are the identity; the feed-forwards are zero."""
    model = GPT(GPTConfig(vocab_size=TASK.vocab_size, max_len=TASK.length, n_layers=2,
                          n_heads=2, d_model=8))  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        feature = {range(0, 4): 0, range(4, 8): 4, range(8, 9): 2}  # token ids → feature
        for ids, f in feature.items():
            model.token_embedding.weight[list(ids), f] = 1.0
            model.token_embedding.weight[list(ids), f + 1] = -1.0
        for norm in (
            model.norm,
            *(m for m in model.layers.modules() if isinstance(m, nn.LayerNorm)),
        ):
            norm.weight.fill_(1.0)
        attn = model.layers[1].self_attn
        if looks:
            attn.q_proj.weight[0, 2] = 10.0  # head 0 (rows 0–3): the query feature
            attn.k_proj.weight[0, 0] = 10.0  # … meets the value feature
        attn.v_proj.weight.copy_(torch.eye(8))
        attn.out_proj.weight.copy_(torch.eye(8))
    return model.eval()


def recall_folds() -> list:
    ids, targets = TASK.batch(torch.Generator().manual_seed(0), 24)
    query = (targets != -100).int().argmax(-1)
    return lm_folds(ids, query, query - TASK.distance)


def test_a_head_that_reads_the_source_is_found_by_the_attention_measures():
    result = evaluate(hand_built(looks=True), recall_folds())
    for measure in ("attention", "best_head", "rollout", "value_norms"):
        assert result["rates"][measure] == 1.0, measure
    assert all((c["layer"], c["head"]) == (1, 0) for c in result["chosen_heads"]["best_head"])
    assert result["examples"] == 24 and 1 / 14 < result["chance"] < 1 / 6  # 6 to 14 candidates


def test_uniform_attention_names_no_source():
    """Every candidate weighs the same in every head: a tie is not a first place. (Rollout
    is not uniform: through two causal layers, earlier tokens gather more.)"""
    result = evaluate(hand_built(looks=False), recall_folds())
    for measure in ("attention", "best_head", "ablation_head"):
        assert result["rates"][measure] == 0.0, measure


def test_ranks_first_ignores_the_query_and_non_candidates():
    candidates = torch.tensor([[True, True, True, False, False]])  # before the query, 3
    ex = Examples({}, torch.tensor([3]), torch.tensor([1]), candidates, lambda out: out)
    assert ranks_first(torch.tensor([[0.0, 0.5, 0.2, 0.9, 0.7]]), ex).tolist() == [True]
    assert ranks_first(torch.tensor([[0.6, 0.5, 0.2, 0.0, 0.0]]), ex).tolist() == [False]
    assert ranks_first(torch.tensor([[0.5, 0.5, 0.2, 0.0, 0.0]]), ex).tolist() == [False]


@pytest.mark.parametrize("seed", range(5))
def test_copy_examples_point_at_the_token_after_the_earlier_occurrence(seed):
    task = CopyTask(values=6, length=5, prefix=4)
    ids, query, source = task.examples(torch.Generator().manual_seed(seed), 16)
    assert ids.shape == (16, task.total)
    for row, q, s in zip(ids, query.tolist(), source.tolist(), strict=True):
        assert row[q] == row[s - 1] < task.values  # the query repeats the token before s
        assert q - (s - 1) == task.length  # … one segment length earlier
        assert len(set(row[row < task.values].tolist())) == task.length  # distinct, no noise
    ids, targets = task.batch(torch.Generator().manual_seed(seed), 16)
    for row, target in zip(ids, targets, strict=True):
        (scored,) = (target != -100).nonzero(as_tuple=True)
        assert len(scored) == task.length - 1
        assert torch.equal(target[scored], row[scored + 1])  # the next token, known from the copy
        assert torch.equal(row[scored - task.length + 1], row[scored + 1])


def test_quick_run_writes_numbers_and_figure(tmp_path):
    assert main(["experiment", "faithfulness", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "faithfulness.json").read_text())
    quick = FaithfulnessConfig.quick()
    assert set(result["tasks"]) == {"recall", "copy", "coreference"}
    for name, task in result["tasks"].items():
        assert set(task["rates"]) == set(MEASURES)
        assert all(0 <= r <= 1 for r in task["rates"].values())
        expected = 2 * quick.pairs if name == "coreference" else quick.examples
        assert task["examples"] == expected
        assert len(task["chosen_heads"]["best_head"]) == 2  # one choice per fold
    assert result["tasks"]["coreference"]["chance"] == 0.5
    assert (tmp_path / "faithfulness.png").stat().st_size > 10_000
