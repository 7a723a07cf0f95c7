"""attnlab GPT vs Hugging Face GPT2LMHeadModel (random config, no downloads)."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from attnlab import GPT


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=120, n_positions=64, n_embd=48, n_layer=3, n_head=4,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    hf = GPT2LMHeadModel(config).eval()
    return hf, GPT.from_hf(hf)


def test_logits_match(pair):
    hf, ours = pair
    ids = torch.randint(0, 120, (3, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_greedy_generation_matches(pair):
    hf, ours = pair
    prompt = torch.randint(0, 120, (2, 6))
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=30, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(prompt, 30, temperature=0), expected)


def test_wrong_model_class_is_refused():
    with pytest.raises(ValueError, match="GPT.from_hf expects a GPT2LMHeadModel; got Linear"):
        GPT.from_hf(torch.nn.Linear(2, 2))
