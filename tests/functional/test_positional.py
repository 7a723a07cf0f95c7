import math

import pytest
import torch

from attnlab.functional.positional import alibi_bias, alibi_slopes, apply_rope, sinusoidal_table


def test_sinusoidal_matches_the_notes_formula():
    table = sinusoidal_table(50, 16)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_rejects_odd_width():
    with pytest.raises(ValueError, match="d_model positive and even; got max_len=4, d_model=5"):
        sinusoidal_table(4, 5)


def test_rope_equals_complex_rotation():
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    positions = torch.arange(9)
    as_complex = torch.view_as_complex(x.reshape(2, 3, 9, 4, 2).contiguous())
    theta = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    rotation = torch.polar(torch.ones(9, 4, dtype=torch.float64), positions[:, None] * theta)
    expected = torch.view_as_real(as_complex * rotation).reshape(2, 3, 9, 8)
    torch.testing.assert_close(apply_rope(x, positions), expected)


def test_rope_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 8, dtype=torch.float64), torch.randn(1, 8, dtype=torch.float64)

    def score(i, j):
        return (apply_rope(q, torch.tensor([i])) * apply_rope(k, torch.tensor([j]))).sum()

    torch.testing.assert_close(score(5, 2), score(13, 10))


def test_alibi_slopes_follow_the_paper():
    assert alibi_slopes(8).tolist() == pytest.approx([2 ** -(h + 1) for h in range(8)])
    # Non-power of two (12): the 8 slopes of H=8, then every other slope of H=16.
    sixteen = [2 ** (-0.5 * (h + 1)) for h in range(16)]
    assert alibi_slopes(12).tolist() == pytest.approx(alibi_slopes(8).tolist() + sixteen[0::2][:4])


def test_alibi_bias_is_minus_slope_times_distance():
    bias = alibi_bias(2, 4)
    assert bias.shape == (2, 4, 4)
    assert bias[1, 3, 0].item() == pytest.approx(-(2**-8) * 3)
    assert bias[0, 2, 2].item() == 0.0
