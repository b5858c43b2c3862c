"""The compat module: the pinned Ray/Optuna still have every private name it uses, and the
session adapters remove what they download."""

from __future__ import annotations

import os

import pyarrow.fs as pafs
import pytest

from audiogan.cluster import compat, session


def test_pinned_ray_and_optuna_internals_are_all_there():
    compat.check()  # raises naming each private attribute or version that changed


def test_check_fails_loudly_on_another_version(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match="ray is 9.9.9"):
        compat.check()


class _RemoteCheckpoint:
    """A Ray Checkpoint on object storage, as far as `_local_copy` looks at it."""

    filesystem = pafs.SubTreeFileSystem("/", pafs.LocalFileSystem())

    def to_directory(self, path: str) -> str:
        with open(os.path.join(path, "model.pt"), "w") as f:
            f.write("x")
        return path


def test_restored_checkpoint_copy_is_removed_after_use():
    with session._local_copy(_RemoteCheckpoint()) as path:
        assert os.path.exists(os.path.join(path, "model.pt"))
    assert not os.path.exists(path)


def test_local_session_resumes_from_its_latest_or_the_given_checkpoint(tmp_path):
    s = session.LocalSession(resume_from="given")
    with s.restored_checkpoint() as path:
        assert path == "given"
    s.checkpoints.append("latest")
    with s.restored_checkpoint() as path:
        assert path == "latest"
