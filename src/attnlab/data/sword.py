"""English–Spanish verse pairs from two SWORD Bible modules (Debian packages, public domain):
King James (``sword-text-kjv``, module engKJV2006eb) and Reina-Valera 1909 (``sword-text-sparv``,
module spaRV1909eb).

The SWORD "zText" format: per testament, ``<t>.bzz`` holds zlib-compressed blocks, ``<t>.bzs``
one (offset, compressed size, uncompressed size) u32 triple per block, and ``<t>.bzv`` one
(block, offset, size) = u32, u32, u16 record per entry of the versification (little-endian).
Entries include module, book and chapter headings besides verses. Both modules use the KJV
versification, so entry i is the same verse in both: pairs are aligned by index, no verse table
needed. Text is OSIS markup; notes are dropped and tags stripped.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from pathlib import Path

__all__ = ["MODULES", "parallel_verses", "read_entries"]

ROOT = Path("/usr/share/sword/modules/texts/ztext")
MODULES = {"en": ("engKJV2006eb", "sword-text-kjv"), "es": ("spaRV1909eb", "sword-text-sparv")}

_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _module_dir(language: str, root: Path) -> Path:
    if language not in MODULES:
        raise ValueError(f"language must be one of {sorted(MODULES)}; got {language!r}")
    module, package = MODULES[language]
    folder = root / module
    if not (folder / "ot.bzv").is_file():
        raise FileNotFoundError(
            f"the {language} Bible ({module}) is missing from {root}: install the Debian package "
            f"with `apt-get update && apt-get install -y {package}`"
        )
    return folder


def read_entries(language: str, root: Path = ROOT) -> list[str | None]:
    """Every versification entry of one module: plain verse text, or None for headings and
    empty entries."""
    folder = _module_dir(language, root)
    entries: list[str | None] = []
    for testament in ("ot", "nt"):
        blocks = (folder / f"{testament}.bzs").read_bytes()
        index = (folder / f"{testament}.bzv").read_bytes()
        data = (folder / f"{testament}.bzz").read_bytes()
        table = [struct.unpack_from("<III", blocks, i) for i in range(0, len(blocks), 12)]
        cache: dict[int, bytes] = {}
        for i in range(0, len(index), 10):
            block, offset, size = struct.unpack_from("<IIH", index, i)
            if size == 0 or block >= len(table):
                entries.append(None)
                continue
            if block not in cache:
                start, compressed, _ = table[block]
                cache = {block: zlib.decompress(data[start : start + compressed])}
            raw = cache[block][offset : offset + size].decode("utf-8")
            entries.append(_verse_text(raw))
    return entries


def _verse_text(raw: str) -> str | None:
    if "<chapter " in raw or 'type="book"' in raw or "x-importer" in raw:
        return None  # headings, not verses
    text = _SPACE.sub(" ", _TAG.sub("", _NOTE.sub("", raw))).strip()
    return html.unescape(text) or None


def parallel_verses(source: str = "en", target: str = "es", *, max_words: int | None = None,
                    root: Path = ROOT) -> list[tuple[str, str]]:  # fmt: skip
    """(source verse, target verse) pairs in canonical order, optionally only verses whose source
    has at most ``max_words`` words."""
    src, tgt = read_entries(source, root), read_entries(target, root)
    if len(src) != len(tgt):
        raise ValueError(f"modules disagree on versification: {len(src)} vs {len(tgt)} entries")
    pairs = [(s, t) for s, t in zip(src, tgt, strict=True) if s and t]
    if max_words is not None:
        pairs = [(s, t) for s, t in pairs if len(s.split()) <= max_words]
    return pairs
