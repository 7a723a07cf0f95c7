import pytest

from attnlab.data.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_json

TEXT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind to suffer"


def test_char_round_trip_and_json():
    tok = CharTokenizer.from_text(TEXT)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    again = tokenizer_from_json(tok.to_json())
    assert again.encode("to be") == tok.encode("to be") and again.vocab_size == tok.vocab_size


def test_char_unknown_character_is_named():
    with pytest.raises(ValueError, match=r"characters not in the vocabulary: \['Z'\]"):
        CharTokenizer.from_text("abc").encode("aZ")


def test_char_tokenizer_needs_text():
    with pytest.raises(ValueError, match="empty text"):
        CharTokenizer.from_text("")


def test_bpe_round_trip_and_specials():
    tok = BPETokenizer.train([TEXT] * 20, vocab_size=300)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert len(tok.encode("the question")) < len("the question")  # merges happened
    again = tokenizer_from_json(tok.to_json())
    assert again.encode(TEXT) == tok.encode(TEXT)


def test_unknown_tokenizer_kind():
    with pytest.raises(ValueError, match="unknown tokenizer kind 'word'"):
        tokenizer_from_json('{"kind": "word"}')
