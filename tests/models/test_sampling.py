"""next_token against an independent reference: the expected distribution is built in plain
Python (sort, softmax, cumulative sum) and compared with the frequencies of many draws."""

import math
from collections import Counter

import pytest
import torch

from attnlab.models.sampling import next_token

# Distinct logits, no two tokens tie; the nucleus boundaries used below are far from any
# cumulative sum, so the expected sets are unambiguous.
LOGITS = [2.0, -1.0, 0.5, 3.1, 1.2, -0.3, 0.9, -2.5, 1.9, 0.1]
DRAWS = 40_000


def softmax(xs):
    top = max(xs)
    e = [math.exp(x - top) for x in xs]
    return [v / sum(e) for v in e]


def expected_top_k(k, temperature):
    kept = sorted(range(len(LOGITS)), key=lambda i: -LOGITS[i])[:k]
    return dict(zip(kept, softmax([LOGITS[i] / temperature for i in kept]), strict=True))


def expected_top_p(p, temperature):
    probs = softmax([x / temperature for x in LOGITS])
    kept, total = [], 0.0
    for i in sorted(range(len(LOGITS)), key=lambda i: -probs[i]):
        kept.append(i)
        total += probs[i]
        if total >= p:  # the smallest set whose probability reaches p
            break
    return {i: probs[i] / total for i in kept}


def frequencies(**kwargs):
    logits = torch.tensor(LOGITS).expand(DRAWS, -1)  # (N, V): one draw per row
    tokens = next_token(logits, generator=torch.Generator().manual_seed(0), **kwargs)
    assert tokens.shape == (DRAWS, 1)
    counts = Counter(tokens.flatten().tolist())
    return {i: n / DRAWS for i, n in counts.items()}


def assert_matches(observed, expected):
    assert set(observed) == set(expected)  # nothing outside is drawn, everything inside is
    for i, p in expected.items():  # 4.5 standard deviations of a frequency over DRAWS draws
        assert observed[i] == pytest.approx(p, abs=4.5 * math.sqrt(p * (1 - p) / DRAWS) + 1e-9)


def test_temperature_zero_is_the_argmax_of_each_row():
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(1))
    expected = [max(range(10), key=lambda i: row[i]) for row in logits.tolist()]
    assert next_token(logits, temperature=0).flatten().tolist() == expected


@pytest.mark.parametrize(("k", "temperature"), [(1, 1.0), (3, 1.0), (5, 0.7), (10, 1.5)])
def test_top_k_samples_the_k_largest_logits_in_proportion(k, temperature):
    assert_matches(frequencies(temperature=temperature, top_k=k), expected_top_k(k, temperature))


@pytest.mark.parametrize(("p", "temperature"), [(0.3, 1.0), (0.6, 1.0), (0.9, 1.0), (0.85, 0.5)])
def test_top_p_samples_the_smallest_set_reaching_p_in_proportion(p, temperature):
    expected = expected_top_p(p, temperature)
    assert 1 <= len(expected) < len(LOGITS)
    assert_matches(frequencies(temperature=temperature, top_p=p), expected)


def test_top_k_then_top_p():
    k_first = expected_top_k(4, 1.0)  # the nucleus of the renormalised top 4
    kept, total = [], 0.0
    for i in sorted(k_first, key=lambda i: -k_first[i]):
        kept.append(i)
        total += k_first[i]
        if total >= 0.7:
            break
    expected = {i: k_first[i] / total for i in kept}
    assert_matches(frequencies(top_k=4, top_p=0.7), expected)


def test_plain_sampling_follows_the_softmax():
    assert_matches(frequencies(), dict(enumerate(softmax(LOGITS))))
