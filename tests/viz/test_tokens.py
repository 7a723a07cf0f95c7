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
        assert shown(piece) == text[start:end].replace(" ", "Ġ")


def test_a_token_ending_inside_a_character_stays_as_written():
    assert shown("Ã") == "Ã"  # the first byte of "é" alone: not UTF-8
    assert shown("ĠallÃ") == "ĠallÃ"
    assert shown("café") == "café"  # é alone stands for the byte 0xE9: not UTF-8, unchanged


def test_white_space_is_visible():
    assert [shown(t) for t in (" ", "\n", "\t", "  ")] == ["␣", "↵", "⇥", "␣␣"]
    assert shown("a b") == "a b"  # spaces between words of a longer token stay
    assert shown("a\nb") == "a↵b"
    assert shown("\x01") == "\\u0001"
    assert [shown(t) for t in ("[CLS]", "##ing", "▁chat", "Ġcat", "Ċ")] == [
        "[CLS]", "##ing", "▁chat", "Ġcat", "Ċ"]  # fmt: skip
