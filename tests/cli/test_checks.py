"""The argument checks every subcommand shares: bounds are inclusive or exclusive as named, and a
path that can be written passes without anything being created."""

import pytest

from attnlab.cli import _checks


@pytest.mark.parametrize(
    ("value", "bounds"),
    [(1, {"at_least": 1}), (0.0, {"at_least": 0.0}), (1.0, {"above": 0.0, "at_most": 1.0}),
     (2**64 - 1, {"at_least": 0, "at_most": 2**64 - 1}), (None, {"at_least": 1}), (-7, {})],
)  # fmt: skip
def test_number_accepts_its_bounds(value, bounds):
    _checks.number("--x", value, **bounds)


@pytest.mark.parametrize(
    ("value", "bounds", "message"),
    [(0, {"at_least": 1}, "--x must be an integer >= 1; got 0"),
     (0.0, {"above": 0.0}, "--x must be a finite number > 0.0; got 0.0"),
     (1.5, {"above": 0.0, "at_most": 1.0}, "--x must be a finite number > 0.0 and <= 1.0; got 1.5"),
     (float("nan"), {}, "--x must be a finite number; got nan"),
     (float("-inf"), {"at_least": 0.0}, "--x must be a finite number >= 0.0; got -inf"),
     (2**64, {"at_most": 2**64 - 1}, "--x must be an integer <= 18446744073709551615; got 1844")],
)  # fmt: skip
def test_number_refuses_beyond_them(value, bounds, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        _checks.number("--x", value, **bounds)


def test_text_takes_any_unicode_but_not_undecodable_bytes():
    _checks.text("TEXT", "naïve café — 猫")
    _checks.text("--prompt", "\n", blank=True)
    for value, blank in (("", True), ("", False), (" \n", False)):
        with pytest.raises(ValueError, match="^--p must be a non-empty text; got"):
            _checks.text("--p", value, blank=blank)
    with pytest.raises(ValueError, match=r"^TEXT is not valid UTF-8: byte 0xfe at character 2$"):
        _checks.text("TEXT", "ab" + b"\xfe".decode("utf-8", "surrogateescape"))


def test_writable_paths_pass_and_nothing_is_created(tmp_path):
    _checks.output_file("-o", str(tmp_path / "new" / "deeper" / "page.html"))
    _checks.output_dir("--out", str(tmp_path / "new" / "run"), files=("a.json",))
    (tmp_path / "old.png").write_text("x")
    _checks.output_file("-o", str(tmp_path / "old.png"), suffixes=(".png",))  # replaced later
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"]
