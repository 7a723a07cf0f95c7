"""How pictures write a token: readable, yet as the tokenizer wrote it.

- white space becomes visible: a newline ``↵``, a tab ``⇥``, and a space ``␣`` in a token of
  white space alone (a character-level model's tokens are single characters, spaces and
  newlines included; spaces between words of a longer token stay); other invisible characters
  become their ``\\u`` escape;
- byte-level BPE (GPT-2's, and attnlab's BPE) writes each byte as a printable character, so a
  non-ASCII letter arrives as two or more (``ĠserÃ¡``): those runs are decoded (``Ġserá``),
  while ``Ġ`` (a leading space) stays, as GPT-2's tokens are shown everywhere. A run that is not
  whole UTF-8 (a token ending inside a character) is left as it is.

Only what is drawn changes: reports and payloads keep the tokenizer's tokens."""

from __future__ import annotations

import functools

__all__ = ["shown"]

WHITE_SPACE = {" ": "␣", "\n": "↵", "\t": "⇥"}


@functools.cache
def _byte_of() -> dict[str, int]:
    """Byte-level BPE's printable character → the byte it stands for (GPT-2's table: printable
    Latin-1 bytes are themselves, the others are shifted to U+0100 on)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    table, shifted = {chr(b): b for b in kept}, 0
    for b in range(256):
        if b not in kept:
            table[chr(256 + shifted)] = b
            shifted += 1
    return table


def _decoded(token: str) -> str:
    """Runs of characters standing for non-ASCII bytes decoded as UTF-8 (see the module)."""
    byte_of = _byte_of()
    if not any(c in byte_of and byte_of[c] >= 0x80 for c in token) or not all(
        c in byte_of for c in token
    ):
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


def shown(token: str) -> str:
    """The token as pictures write it (see the module)."""
    token = _decoded(token)
    blank = not token.strip()  # a space shows as ␣ where it is all there is
    return "".join(
        WHITE_SPACE[c] if c in WHITE_SPACE and (blank or c != " ")
        else c if c.isprintable() else f"\\u{ord(c):04x}"
        for c in token
    )  # fmt: skip
