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
