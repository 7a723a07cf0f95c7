"""Models for the explain tests: the bundled MiniLM (loaded once per process), and small attnlab
GPTs with random weights, made peaked so the toggles move the numbers clearly."""

import pytest
import torch
from tests.viz.conftest import browser, open_page  # noqa: F401  (Chromium fixture, helper)

SENTENCE = "The animal didn't cross the street because it was tired"


class WordTokenizer:
    """attnlab's tokenizer interface (encode / decode) over whole words: lets a test put any
    string, markup included, into one token."""

    def __init__(self, words):
        self.words = list(dict.fromkeys(words))

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.words.index(w) for w in text.split(" ")]

    def decode(self, ids) -> str:
        return " ".join(self.words[i] for i in ids)


def small_gpt(vocab_size: int, positional: str = "learned", causal: bool = True):
    import attnlab

    torch.manual_seed(0)
    config = attnlab.GPTConfig(vocab_size=vocab_size, max_len=32, n_layers=2, n_heads=4,
                               d_model=32, positional=positional, causal=causal)  # fmt: skip
    model = attnlab.GPT(config).eval()
    with torch.no_grad():  # larger weights: peaked attention, visible changes
        for p in model.parameters():
            p.mul_(8 if p.dim() == 2 else 1)
    return model


@pytest.fixture(scope="session")
def minilm():
    from attnlab.inspection.pretrained import load_minilm

    return load_minilm()
