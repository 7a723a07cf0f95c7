"""Language-model windows: every start is drawn, including the window ending at the last token,
and none reaches past the end."""

import pytest
import torch

from attnlab.data.windows import sample_windows


def test_every_window_start_is_drawn_and_none_past_the_end():
    N, T = 20, 8
    ids = torch.arange(N) * 3  # distinct values: a window's first input names its start
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        inputs, targets = sample_windows(ids, 4, T, g)
        assert inputs.shape == targets.shape == (4, T)
        for row_in, row_t in zip(inputs, targets, strict=True):
            s = int(row_in[0]) // 3
            assert s + T <= N - 1  # the last target exists
            assert row_in.tolist() == [3 * i for i in range(s, s + T)]
            assert row_t.tolist() == [3 * i for i in range(s + 1, s + T + 1)]
            starts.add(s)
    assert starts == set(range(N - T))  # 0..N − T − 1: the last window ends at token N − 1


def test_one_window_fits_exactly():
    inputs, targets = sample_windows(torch.arange(5), 3, 4, torch.Generator().manual_seed(0))
    assert inputs.tolist() == [[0, 1, 2, 3]] * 3 and targets.tolist() == [[1, 2, 3, 4]] * 3


def test_too_short_a_text_is_refused():
    with pytest.raises(ValueError, match="the text has 4 tokens; .* needs 5"):
        sample_windows(torch.arange(4), 1, 4, torch.Generator())
