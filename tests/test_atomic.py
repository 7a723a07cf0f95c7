import os
import stat

import pytest

from attnlab.atomic import atomic_write, write_json


def test_write_json_is_readable_by_others(tmp_path):
    path = write_json(tmp_path / "a" / "x.json", {"k": 1})
    assert path.read_text().strip().startswith("{")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = write_json(tmp_path / "x.json", {"version": 1})

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, fail)
    assert '"version": 1' in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_errors_name_the_path_asked_for_not_the_temporary_file(tmp_path):
    folder = tmp_path / "page.html"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as err:
        atomic_write(folder, lambda tmp: open(tmp, "w").close())
    assert err.value.filename == str(folder)

    def full(tmp):
        raise OSError(28, "No space left on device")  # as a write() says it: no file name

    with pytest.raises(OSError, match="No space left") as err:
        atomic_write(tmp_path / "x.json", full)
    assert err.value.filename == str(tmp_path / "x.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]
