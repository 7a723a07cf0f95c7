import os
import stat
from pathlib import Path

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


def test_check_writable_names_the_folder_and_keeps_the_systems_reason(tmp_path, monkeypatch):
    import errno
    import tempfile

    import pytest

    from attnlab.atomic import check_writable

    check_writable(tmp_path / "new" / "deeper")  # creatable under a writable folder
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        check_writable(tmp_path / "afile" / "run")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    with pytest.raises(OSError, match=f"folder {tmp_path} cannot take a file") as caught:
        check_writable(tmp_path)
    assert not isinstance(caught.value, PermissionError)


def test_a_writers_own_temporary_files_stay_out_of_the_target_folder(tmp_path):
    """safetensors 0.8 writes a .tmpXXXXXX beside the file it is given, then renames it: a
    save that fails (or is killed) inside it leaves nothing beside the target."""
    import safetensors.torch
    import torch

    path = atomic_write(tmp_path / "w.safetensors",
                        lambda tmp: safetensors.torch.save_file({"x": torch.ones(3)}, tmp))  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]

    def fail(tmp):
        (Path(tmp).parent / ".tmpAbC12x").write_bytes(b"half")  # as safetensors does
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
