"""How pictures write a token (attnlab.viz.tokens.shown): white space made visible, byte-level
BPE's bytes decoded back to letters; checked against the ``tokenizers`` library's own byte-level
pre-tokenizer."""

from hypothesis import example, given, settings
from hypothesis import strategies as st
from tokenizers import pre_tokenizers

from attnlab.viz.tokens import shown

# Any visible character (every continuation byte 0x80–0xBF and lead byte occurs), and spaces;
# invisible ones become escapes (test_white_space_is_visible).
CHARACTERS = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"))


@settings(max_examples=200, deadline=None)
@given(st.text(CHARACTERS | st.just(" "), min_size=1, max_size=40))
@example("® ¡Hola! ¿Qué tal? Ωμέγα Ж 中文 😀 œß")
def test_byte_level_pieces_read_as_the_text_they_encode(text):
    """Every piece byte-level BPE makes of a text (before merges: whole words, a leading space
    as Ġ) is shown as those characters of the text, its space as Ġ."""
    pieces = pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)
    for piece, (start, end) in pieces:
        assert shown(piece, byte_level=True) == text[start:end].replace(" ", "Ġ")


def test_a_token_ending_inside_a_character_stays_as_written():
    assert shown("Ã", byte_level=True) == "Ã"  # the first byte of "é" alone: not UTF-8
    assert shown("ĠallÃ", byte_level=True) == "ĠallÃ"
    # é alone stands for the byte 0xE9: not UTF-8, unchanged
    assert shown("café", byte_level=True) == "café"


def test_only_a_byte_level_tokenizers_tokens_are_decoded():
    """Decided once per tokenizer: a WordPiece or character token that happens to look like
    byte-level BPE's bytes is written as it is."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from attnlab.viz.tokens import byte_level

    assert shown("ĠfuÃ©", byte_level=True) == "Ġfué"
    assert shown("fuÃ©") == "fuÃ©"  # not byte-level: as written
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words = Tokenizer(models.WordLevel({"a": 0}, unk_token="a"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    only_decoder = Tokenizer(models.BPE())
    only_decoder.decoder = decoders.ByteLevel()
    assert [byte_level(t) for t in (bpe, words, only_decoder)] == [True, False, True]


def test_white_space_is_visible():
    assert [shown(t) for t in (" ", "\n", "\t", "  ")] == ["␣", "↵", "⇥", "␣␣"]
    assert shown("a b") == "a b"  # spaces between words of a longer token stay
    assert shown("a\nb") == "a↵b"
    assert shown("\x01") == "\\u0001"
    assert [shown(t) for t in ("[CLS]", "##ing", "▁chat", "Ġcat", "Ċ")] == [
        "[CLS]", "##ing", "▁chat", "Ġcat", "Ċ"]  # fmt: skip
