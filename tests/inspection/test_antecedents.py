import pytest
import torch

from attnlab.inspection.antecedents import token_attention
from attnlab.inspection.pretrained import load_minilm


@pytest.fixture(scope="module")
def minilm():
    return load_minilm("eager")


def test_weights_equal_hugging_face_attentions(minilm):
    model, tokenizer = minilm
    text = "the cat chased the mouse because it was hungry"
    result = token_attention(model, tokenizer, text, "it", ("cat", "mouse"))
    enc = tokenizer(text, return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    with torch.no_grad():
        att = model(**enc, output_attentions=True).attentions
    i, c, m = tokens.index("it"), tokens.index("cat"), tokens.index("mouse")
    assert torch.equal(result.weights[2, 5], torch.stack([att[2][0, 5, i, c], att[2][0, 5, i, m]]))


def test_missing_token_is_a_clear_error(minilm):
    with pytest.raises(ValueError, match=r"token 'dog' is not in the text"):
        token_attention(*minilm, "the cat sat on the mat", "dog", ("cat",))


def test_empty_text_is_refused(minilm):
    with pytest.raises(ValueError, match="text must not be empty"):
        token_attention(*minilm, "  ", "it", ("cat",))
