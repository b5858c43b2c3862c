"""Local atomic writes: all or nothing, and files get the mode the umask gives."""

import os
import stat

import pytest

from audiogan import storage


def test_atomic_write_respects_umask_and_leaves_no_temp(tmp_path):
    old = os.umask(0o027)
    storage._umask.cache_clear()
    try:
        path = tmp_path / "a" / "x.json"
        storage.write_json_atomic(str(path), {"k": 1})
    finally:
        os.umask(old)
        storage._umask.cache_clear()
    assert storage.read_json(str(path)) == {"k": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # not mkstemp's 0600
    assert os.listdir(path.parent) == ["x.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.bin"
    storage.write_bytes_atomic(str(path), b"old")

    def boom(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        storage.write_bytes_atomic(str(path), b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]
