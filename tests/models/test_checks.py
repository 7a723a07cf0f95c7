import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from attnlab import GPT, GPTConfig
from attnlab.models.checks import check_causal


def small_gpt():
    return GPT(GPTConfig(vocab_size=20, max_len=32, n_layers=2, n_heads=2, d_model=16))


def test_attnlab_gpt_is_causal():
    report = check_causal(small_gpt(), vocab_size=20)
    assert report.causal and report.cuts_tested == 6
    assert str(report).startswith("causal")


def test_a_model_without_the_causal_mask_is_flagged():
    gpt = small_gpt().eval()

    def leaking(ids):  # the same weights, attention run without its causal mask
        x = gpt.token_embedding(ids) + gpt.position(ids.shape[1])
        for layer in gpt.layers:
            x = layer(x, causal=False)
        return gpt.lm_head(gpt.norm(x))

    report = check_causal(leaking, vocab_size=20)
    assert not report.causal
    assert report.leaks[0] == (0, 0)  # the very first position already reads the future
    assert "LEAK" in str(report)


def test_hugging_face_gpt2_is_causal():
    config = GPT2Config(vocab_size=30, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    assert check_causal(GPT2LMHeadModel(config), vocab_size=30).causal


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="length must be at least 2 to have a future; got 1"):
        check_causal(small_gpt(), vocab_size=20, length=1)
    with pytest.raises(ValueError, match=r"model must map ids \(2, 16\) to outputs \(B, T, ...\)"):
        check_causal(lambda ids: torch.zeros(3), vocab_size=20)
