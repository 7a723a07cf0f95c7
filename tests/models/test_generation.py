"""The sliding-window generator against a plain loop that runs the model on the last
max_len tokens (every position the model has) at every step, without a cache."""

import pytest
import torch

from attnlab import GPT, GPTConfig
from attnlab.models.generation import generate_sliding

MAX_LEN = 12


@pytest.fixture
def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, max_len=MAX_LEN, n_layers=2, n_heads=2, d_model=16)).eval()


@torch.no_grad()
def sliding_loop(model, ids, n, generator=None):
    """Every token from a fresh forward pass over at most the last MAX_LEN tokens."""
    for _ in range(n):
        logits = model(ids[:, -MAX_LEN:]).logits[:, -1]  # (B, V)
        if generator is None:
            token = logits.argmax(-1, keepdim=True)
        else:
            token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
        ids = torch.cat((ids, token), dim=1)
    return ids


@pytest.mark.parametrize("prompt_len", [1, 5, MAX_LEN - 1, MAX_LEN, 20])
def test_greedy_equals_a_plain_sliding_loop(gpt, prompt_len):
    prompt = torch.randint(0, 40, (2, prompt_len), generator=torch.Generator().manual_seed(1))
    out = generate_sliding(gpt, prompt, 30, temperature=0)
    assert out.shape == (2, prompt_len + 30) and torch.equal(out[:, :prompt_len], prompt)
    assert torch.equal(out, sliding_loop(gpt, prompt, 30))


def test_sampling_draws_what_the_plain_loop_draws(gpt):
    prompt = torch.randint(0, 40, (3, 4), generator=torch.Generator().manual_seed(2))
    out = generate_sliding(gpt, prompt, 25, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, sliding_loop(gpt, prompt, 25, torch.Generator().manual_seed(3)))


def test_within_the_context_it_is_generate(gpt):
    prompt = torch.randint(0, 40, (1, 3))
    g1, g2 = (torch.Generator().manual_seed(4) for _ in range(2))
    within = generate_sliding(gpt, prompt, MAX_LEN - 3, temperature=0.9, top_k=5, generator=g1)
    assert torch.equal(within, gpt.generate(prompt, MAX_LEN - 3, temperature=0.9, top_k=5,
                                            generator=g2))  # fmt: skip


def test_bad_arguments_are_clear(gpt):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0; got -1"):
        generate_sliding(gpt, torch.zeros(1, 2, dtype=torch.long), -1)
    tiny = GPT(GPTConfig(vocab_size=5, max_len=1, n_layers=1, n_heads=1, d_model=4))
    out = generate_sliding(tiny, torch.zeros(1, 1, dtype=torch.long), 3)  # a unigram model
    assert out.shape == (1, 4)
