import pytest
import torch

from attnlab import masks


def test_causal_square_is_lower_triangle():
    assert torch.equal(masks.causal(4), torch.ones(4, 4, dtype=torch.bool).tril())


def test_causal_with_cache_is_aligned_to_the_end():
    m = masks.causal(2, 5)
    assert m[1].all() and m[0, :4].all() and not m[0, 4]


def test_sliding_window_sees_the_last_w_keys_including_itself():
    m = masks.sliding_window(6, window=3)
    for i in range(6):
        assert m[i].nonzero().flatten().tolist() == list(range(max(0, i - 2), i + 1))


def test_sliding_window_rejects_non_positive_window():
    with pytest.raises(ValueError, match="window must be a positive number of keys; got 0"):
        masks.sliding_window(4, window=0)


def test_padding_from_lengths_marks_real_tokens():
    m = masks.padding_from_lengths([2, 0, 3], 3)
    assert m.shape == (3, 1, 1, 3)
    assert m[:, 0, 0].tolist() == [[True, True, False], [False] * 3, [True] * 3]


def test_padding_from_lengths_rejects_lengths_over_max_len():
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, max_len=3\]; got min 1, max 5"):
        masks.padding_from_lengths([1, 5], 3)


def test_from_key_padding_accepts_hugging_face_attention_mask():
    hf = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert masks.from_key_padding(hf)[:, 0, 0].tolist() == [[True, True, False], [True] * 3]


def test_from_masked_out_inverts_pytorch_convention():
    torch_style = torch.tensor([[False, True]])  # True = masked out
    assert masks.from_masked_out(torch_style).tolist() == [[True, False]]


def test_from_masked_out_leaves_float_masks_alone():
    bias = torch.tensor([0.0, float("-inf")])
    assert masks.from_masked_out(bias) is bias


def test_combine_bool_is_and():
    a, b = masks.causal(3), masks.padding_from_lengths([2], 3)
    assert torch.equal(masks.combine(a, None, b), a & b)


def test_combine_mixed_adds_minus_inf_for_blocked():
    bias = torch.full((3, 3), 0.5)
    out = masks.combine(masks.causal(3), bias)
    assert out[0, 0] == 0.5 and out[0, 1] == float("-inf")


def test_combine_of_nothing_is_none():
    assert masks.combine(None, None) is None


def test_describe_flags_inverted_causal_mask():
    report = masks.describe(~masks.causal(5))
    assert any("inverted" in w for w in report.warnings)
    assert "upper triangle" in str(report)


def test_describe_flags_all_closed_mask():
    report = masks.describe(torch.zeros(3, 3, dtype=torch.bool))
    assert report.all_closed and "from_masked_out" in str(report)


def test_describe_counts_fully_masked_rows():
    m = torch.ones(2, 4, 4, dtype=torch.bool)
    m[1, 2] = False
    report = masks.describe(m)
    assert report.fully_masked_rows == 1 and report.first_fully_masked == ((1, 2),)


def test_describe_finds_nothing_wrong_with_causal():
    report = masks.describe(masks.causal(6))
    assert report.warnings == () and not report.all_open and report.fully_masked_rows == 0
