"""How pictures and printed tables write a token: readable, yet as the tokenizer wrote it.

- white space becomes visible: a newline ``↵``, a tab ``⇥``, and a space ``␣`` in a token of
  white space alone (a character-level model's tokens are single characters, spaces and
  newlines included; spaces between words of a longer token stay); other invisible characters
  become their ``\\u`` escape;
- byte-level BPE (GPT-2's, and attnlab's BPE) writes each byte as a printable character, so a
  non-ASCII letter arrives as two or more (``ĠserÃ¡``): for a byte-level tokenizer
  (:func:`byte_level`, decided once per tokenizer) those runs are decoded (``Ġserá``), while
  ``Ġ`` (a leading space) stays, as GPT-2's tokens are shown everywhere. A run that is not
  whole UTF-8 (a token ending inside a character) is left as it is. Other tokenizers' tokens
  are never decoded.

Only what is drawn or printed changes: reports and payloads keep the tokenizer's tokens."""

from __future__ import annotations

import functools

__all__ = ["byte_level", "decoded", "shown", "written"]

WHITE_SPACE = {" ": "␣", "\n": "↵", "\t": "⇥"}


def byte_level(tokenizer) -> bool:
    """Whether ``tokenizer`` writes tokens as byte-level BPE does: a Hugging Face fast tokenizer
    (or a ``tokenizers.Tokenizer``) whose pre-tokenizer or decoder is ``ByteLevel``, or a slow
    one with GPT-2's byte table. An attnlab translation run's two sides: its source's."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers

    from attnlab.inspection.runs import sides

    tokenizer = sides(tokenizer)[0]
    if hasattr(tokenizer, "byte_encoder"):  # GPT2Tokenizer and its kin (slow)
        return True
    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(
        tokenizer, "backend_tokenizer", None)  # fmt: skip
    if backend is None:
        return False
    return isinstance(backend.pre_tokenizer, pre_tokenizers.ByteLevel) or isinstance(
        backend.decoder, decoders.ByteLevel
    )


@functools.cache
def _byte_of() -> dict[str, int]:
    """Byte-level BPE's printable character → the byte it stands for (GPT-2's table, as
    Hugging Face transformers gives it)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def decoded(token: str) -> str:
    """A byte-level token with its runs of characters standing for non-ASCII bytes decoded as
    UTF-8 (see the module); unchanged if a run is not whole UTF-8."""
    byte_of = _byte_of()
    if not any(byte_of.get(c, 0) >= 0x80 for c in token) or not all(c in byte_of for c in token):
        return token
    out, run = [], bytearray()
    for c in token + "\0":  # "\0" closes the last run (it is not in the table: never shown)
        b = byte_of.get(c, 0)
        if b >= 0x80:
            run.append(b)
            continue
        if run:
            try:
                out.append(run.decode("utf-8"))
            except UnicodeDecodeError:
                return token
            run = bytearray()
        out.append(c)
    return "".join(out[:-1])


def shown(token: str, *, byte_level: bool = False) -> str:
    """The token as pictures and tables write it (see the module); ``byte_level``: the
    tokenizer's tokens are byte-level BPE's (:func:`byte_level`)."""
    token = decoded(token) if byte_level else token
    blank = not token.strip()  # a space shows as ␣ where it is all there is
    return "".join(
        WHITE_SPACE[c] if c in WHITE_SPACE and (blank or c != " ")
        else c if c.isprintable() else f"\\u{ord(c):04x}"
        for c in token
    )  # fmt: skip


def written(token: str, tokens: list[str], *, byte_level: bool = False) -> str:
    """The tokenizer's own token for ``token`` as a user typed it: itself if it is one of
    ``tokens``, else the one of ``tokens`` drawn as ``token`` (``↵`` for a newline, ``␣`` for a
    space, ``Ġfué`` for ``ĠfuÃ©``); unchanged if none is (the caller's error names the
    tokens)."""
    if token in tokens:
        return token
    return next((t for t in tokens if shown(t, byte_level=byte_level) == token), token)
