"""Bad input to scaled_dot_product_attention: a ValueError naming the argument, what was
expected and what was given."""

import pytest
import torch

from attnlab import scaled_dot_product_attention
from attnlab.functional.checks import check_attention_inputs, is_common_case


def qkv(lq=4, lk=5, dk=8, dv=8):
    return torch.randn(2, lq, dk), torch.randn(2, lk, dk), torch.randn(2, lk, dv)


def test_mismatched_d_k_names_both_sizes():
    q, _, v = qkv()
    k = torch.randn(2, 5, 6)
    with pytest.raises(
        ValueError, match=r"q and k must share the last dimension d_k: q has 8, k has 6"
    ):
        scaled_dot_product_attention(q, k, v)


def test_mismatched_key_count_between_k_and_v():
    q, k, _ = qkv()
    v = torch.randn(2, 7, 8)
    with pytest.raises(
        ValueError, match=r"k and v must have the same number of keys Lk.*k has 5, v has 7"
    ):
        scaled_dot_product_attention(q, k, v)


def test_mask_that_cannot_broadcast_names_shapes():
    q, k, v = qkv()
    with pytest.raises(
        ValueError, match=r"mask of shape \(4, 4\) cannot broadcast to .*\(2, 4, 5\)"
    ):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 4, dtype=torch.bool))


def test_integer_mask_is_refused_with_the_fix():
    q, k, v = qkv()
    with pytest.raises(
        ValueError, match=r"mask must be bool .* got dtype torch.int64.*mask.bool\(\)"
    ):
        scaled_dot_product_attention(q, k, v, torch.ones(4, 5, dtype=torch.long))


@pytest.mark.parametrize("name", ["q", "k", "v"])
def test_wrong_rank_names_the_argument(name):
    args = dict(zip("qkv", qkv(), strict=True))
    args[name] = torch.randn(8)
    with pytest.raises(
        ValueError, match=rf"{name} must have at least 2 dimensions .* got shape \(8,\)"
    ):
        scaled_dot_product_attention(args["q"], args["k"], args["v"])


def test_batch_dimensions_that_do_not_broadcast():
    q, k, v = torch.randn(2, 4, 8), torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    with pytest.raises(ValueError, match=r"must broadcast; got q \(2, 4, 8\), k \(3, 5, 8\)"):
        scaled_dot_product_attention(q, k, v)


def test_mixed_dtypes_are_refused():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"share one dtype; got q torch.float32, k torch.float64"):
        scaled_dot_product_attention(q, k.double(), v)


def test_integer_inputs_are_refused():
    q, k, v = qkv()
    with pytest.raises(
        ValueError, match=r"q must be a floating-point tensor; got dtype torch.int64"
    ):
        scaled_dot_product_attention(q.long(), k, v)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("inf")])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match=rf"scale must be a positive finite number; got {scale}"):
        scaled_dot_product_attention(*qkv(), scale=scale)


def test_bad_dropout():
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\); got 1.5"):
        scaled_dot_product_attention(*qkv(), dropout=1.5)


def test_decoding_shapes_take_the_fast_check_and_still_catch_mistakes():
    q, k, v = torch.randn(1, 2, 1, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    assert is_common_case(q, k, v, None, None, 0.0)  # one new query over a cache of five keys
    assert is_common_case(q, k, v, None, 0.5, 0.0)
    with pytest.raises(ValueError, match="k and v must have the same number of keys Lk"):
        check_attention_inputs(q, k, v[:, :, :4], None, None, 0.0)
    with pytest.raises(ValueError, match="q and k must share the last dimension d_k"):
        check_attention_inputs(q[..., :4], k, v, None, None, 0.0)
    with pytest.raises(ValueError, match="scale must be a positive finite number; got nan"):
        check_attention_inputs(q, k, v, None, float("nan"), 0.0)
