import pytest
import torch

import attnlab
from attnlab.inspection.pretrained import load_minilm

TIRED = "The animal didn't cross the street because it was tired"
WIDE = "The animal didn't cross the street because it was wide"


@pytest.fixture(scope="module")
def tired():
    return attnlab.inspect(TIRED)


def test_report_has_tokens_and_one_map_per_layer(tired):
    assert tired.tokens[0] == "[CLS]" and "animal" in tired.tokens
    assert len(tired.maps) == 6
    assert tired.weights(0).shape == (12, len(tired.tokens), len(tired.tokens))


def test_attends_lists_top_keys_that_match_eager_weights(tired):
    eager, tokenizer = load_minilm("eager")
    with torch.no_grad():
        ref = eager(**tokenizer(TIRED, return_tensors="pt"), output_attentions=True).attentions
    i = tired.position("it")
    found = tired.attends("it", top=2)
    _key, j, w = found.top[3][1][0]
    assert w == pytest.approx(ref[3][0, 1, i].max().item(), abs=1e-5)
    assert j == int(ref[3][0, 1, i].argmax())
    assert "layer  3 head  1" in str(found)


def test_real_model_has_heads_favouring_animal(tired):
    weights = tired.weight_between("it", "animal")  # (L, H)
    street = tired.weight_between("it", "street")
    assert weights.shape == (6, 12)
    assert bool(((weights > 0.5) & (street < 0.1)).any())  # learned, not programmed


def test_compare_two_sentences(tired):
    wide = attnlab.inspect(WIDE)
    both = tired.compare(wide, "it", "animal")
    assert both.shape == (6, 12, 2)


def test_token_not_in_text(tired):
    with pytest.raises(ValueError, match=r"token 'dog' is not in the text"):
        tired.attends("dog")


def test_layer_out_of_range(tired):
    with pytest.raises(ValueError, match=r"layer must lie in \[0, 6\); got 6"):
        tired.weights(6)


def test_head_out_of_range(tired):
    with pytest.raises(ValueError, match=r"head index must lie in \[0, 12\); got 12"):
        tired.weights(0, 12)


def test_empty_text():
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        attnlab.inspect("   ")


def test_too_long_text_names_the_limit_and_truncates_only_when_asked():
    text = "word " * 600
    with pytest.raises(ValueError, match="takes at most 512 positions. Pass truncate=True"):
        attnlab.inspect(text)
    with pytest.warns(UserWarning, match="truncated from 602 to 512 tokens"):
        report = attnlab.inspect(text, truncate=True)
    assert len(report.tokens) == 512


def test_heads_favouring_ranks_heads_by_the_margin_of_eager_weights(tired):
    eager, tokenizer = load_minilm("eager")
    with torch.no_grad():
        ref = eager(**tokenizer(TIRED, return_tensors="pt"), output_attentions=True).attentions
    i, a, s = (tired.position(t) for t in ("it", "animal", "street"))
    margins = sorted(
        ((float(layer[0, h, i, a] - layer[0, h, i, s]), n, h)
         for n, layer in enumerate(ref) for h in range(layer.shape[1])),
        reverse=True,
    )  # fmt: skip
    found = tired.heads_favouring("it", "animal", "street", top=4)
    assert [(x.layer, x.head) for x in found] == [(n, h) for _, n, h in margins[:4]]
    best = found[0]
    assert best.favour - best.against == pytest.approx(margins[0][0], abs=1e-5)
    assert best.favour == pytest.approx(float(ref[best.layer][0, best.head, i, a]), abs=1e-5)


def test_heads_weighing_ranks_each_layers_heads_by_the_weight_on_the_key(tired):
    table = tired.heads_weighing("it", "animal", top=2)
    weights = tired.weight_between("it", "animal")  # (L, H), independent of the ranking
    assert len(table) == weights.shape[0]
    for layer, heads in enumerate(table):
        best = sorted(range(weights.shape[1]), key=lambda h: -float(weights[layer, h]))[:2]
        assert [h for h, _ in heads] == best
        assert [w for _, w in heads] == [float(weights[layer, h]) for h in best]
