import json

import pytest

from attnlab.cli.main import main
from attnlab.experiments.coreference import load_pairs, sign_test
from attnlab.inspection.pretrained import load_minilm


def test_the_pairs_are_minimal_balanced_and_single_token():
    data = load_pairs()
    _, tokenizer = load_minilm()
    assert data["source"] and data["pronoun"] == "it"
    assert len(data["pairs"]) >= 20
    first = 0
    for pair in data["pairs"]:
        a, b = pair["a"].split(), pair["b"].split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1, pair
        for text in (pair["a"], pair["b"]):
            tokens = tokenizer.tokenize(text)
            assert tokens.count("it") == 1, text
            for word in pair["candidates"]:
                assert tokens.count(word) == 1, (word, tokens)  # one WordPiece, once
                assert tokens.index(word) < tokens.index("it"), text
        first += pair["answer_a"] == min(pair["candidates"], key=pair["a"].split().index)
    assert abs(first - len(data["pairs"]) / 2) <= 2  # the first-mentioned answer is not favoured


def test_sign_test():
    assert sign_test(0, 0) == 1.0
    assert sign_test(10, 10) == pytest.approx(2 / 1024)
    assert sign_test(0, 10) == pytest.approx(2 / 1024)
    assert sign_test(5, 10) == 1.0
    assert sign_test(8, 10) == pytest.approx(2 * (1 + 10 + 45) / 1024)


def test_bad_pairs_are_refused(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"source": "x", "pronoun": "it", "pairs": [
        {"a": "A", "b": "B", "candidates": ["cat", "dog"], "answer_a": "cat", "answer_b": "cat"},
    ]}))  # fmt: skip
    with pytest.raises(ValueError, match="pair 0: answers 'cat', 'cat' must be the two candidates"):
        load_pairs(path)


def test_quick_run_writes_numbers_and_figure(tmp_path):
    assert main(["experiment", "coreference", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "coreference.json").read_text())
    assert result["pairs"] == 3 and result["sentences"] == 6
    assert len(result["heads"]) == 6 * 12  # every head of MiniLM
    for h in result["heads"]:
        assert 0 <= h["accuracy"] <= 1
        assert h["right_way"] + h["wrong_way"] + h["no_switch"] == 3
    # The notes' example: some head puts more weight on "animal" than on "street" for "tired".
    tired = result["per_pair"][0]["weights_a"]  # (L, H, 2): [animal, street]
    assert max(w[0] - w[1] for layer in tired for w in layer) > 0.3
    assert (tmp_path / "coreference.png").stat().st_size > 10_000
