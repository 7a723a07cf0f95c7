"""Language-model batches: windows of T + 1 tokens that reach every position of the split."""

import torch

from attnlab.train.config import load_config
from attnlab.train.tasks import LMTask


def test_lm_windows_are_shifted_pairs_and_reach_the_last_token(tmp_path):
    corpus = tmp_path / "text.txt"  # 40 distinct characters: every window is unique
    corpus.write_text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN", encoding="utf-8")
    config = load_config("shakespeare-char", corpus=str(corpus), context=8, batch=4,
                         val_fraction=0.5, out_dir=str(tmp_path / "run"))  # fmt: skip
    task = LMTask.prepare(config)
    ids = task.train_ids  # 20 tokens
    starts = set()
    for step in range(100):
        b = task.batch(step)
        assert b["input_ids"].shape == b["targets"].shape == (4, 8)
        for row_in, row_t in zip(b["input_ids"], b["targets"], strict=True):
            s = int((ids == row_in[0]).nonzero())
            assert torch.equal(ids[s : s + 8], row_in) and torch.equal(ids[s + 1 : s + 9], row_t)
            starts.add(s)
    assert starts == set(range(len(ids) - 8))  # every window, the one ending at the last token
