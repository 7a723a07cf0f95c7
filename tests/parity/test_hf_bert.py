"""attnlab Encoder vs Hugging Face BertModel with the real pretrained all-MiniLM-L6-v2."""

import pytest
import torch

from attnlab import Encoder
from attnlab.inspection.pretrained import load_minilm

SENTENCES = [
    "The animal didn't cross the street because it was tired",
    "The cat sat on the mat",
    "the cat chased the mouse",
]


@pytest.fixture(scope="module")
def pair():
    hf, tokenizer = load_minilm("eager")
    return hf, tokenizer, Encoder.from_hf(hf)


def test_hidden_states_and_attention_match_on_a_padded_batch(pair):
    hf, tokenizer, ours = pair
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**enc, output_attentions=True, output_hidden_states=True)
        out = ours(
            enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], need_weights=True
        )
    real = enc["attention_mask"].bool()
    for a, b in zip(out.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], atol=1e-4, rtol=1e-4)
    for a, b in zip(out.attentions, expected.attentions, strict=True):
        # rows of real query tokens; padded keys get weight 0 in both
        torch.testing.assert_close(
            a.transpose(1, 2)[real], b.transpose(1, 2)[real], atol=1e-4, rtol=1e-4
        )


def test_model_shape_is_minilm(pair):
    _, _, ours = pair
    assert len(ours.layers) == 6 and ours.layers[0].self_attn.n_heads == 12
    assert ours.config.d_model == 384


def test_sequence_longer_than_positions_is_refused(pair):
    _, _, ours = pair
    with pytest.raises(ValueError, match="input_ids is too long: 600 positions, max_len is 512"):
        ours(torch.zeros(1, 600, dtype=torch.long))
