import pytest
import torch

from attnlab import scaled_dot_product_attention
from attnlab.functional.positional import sinusoidal_table
from attnlab.nn.positional import (
    ALiBi,
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)


def test_sinusoidal_module_returns_rows_from_offset():
    module = SinusoidalPositionalEncoding(20, 8)
    torch.testing.assert_close(module(5, offset=3), sinusoidal_table(20, 8)[3:8])


def test_positions_past_the_table_are_refused():
    with pytest.raises(ValueError, match=r"positions 8..12 requested, max_len is 10"):
        LearnedPositionalEmbedding(10, 4)(5, offset=8)


def test_rotary_with_offset_equals_rotary_of_the_longer_sequence():
    rope = RotaryEmbedding(8)
    x = torch.randn(1, 2, 6, 8)
    torch.testing.assert_close(rope(x[..., 4:, :], offset=4), rope(x)[..., 4:, :])


def test_alibi_as_a_float_mask_favours_near_keys():
    q = torch.zeros(1, 4, 5, 8)  # equal scores: only the bias decides
    k, v = torch.zeros(1, 4, 5, 8), torch.randn(1, 4, 5, 8)
    _, w = scaled_dot_product_attention(q, k, v, ALiBi(4)(5), causal=True, need_weights=True)
    last = w[0, :, 4]  # the last query over keys 0..4
    assert (last.diff(dim=-1) > 0).all()  # weight grows towards the query's own position
