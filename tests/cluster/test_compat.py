"""The compat module: the pinned Ray/Optuna still have every private name it uses, and the
local session's resume (a remote checkpoint's download is removed after use:
tests/cluster/test_storage_faults.py)."""

from __future__ import annotations

import pytest

from audiogan.cluster import compat, session


def test_pinned_ray_and_optuna_internals_are_all_there():
    compat.check()  # raises naming each private attribute or version that changed


def test_check_fails_loudly_on_another_version(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "__version__", "9.9.9")
    with pytest.raises(RuntimeError, match="ray is 9.9.9"):
        compat.check()


def test_local_session_resumes_from_its_latest_or_the_given_checkpoint(tmp_path):
    s = session.LocalSession(resume_from="given")
    with s.restored_checkpoint() as path:
        assert path == "given"
    s.checkpoints.append("latest")
    with s.restored_checkpoint() as path:
        assert path == "latest"
