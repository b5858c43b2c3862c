"""The study's storage (audiogan.sweep.study): WAL, a consistent copy of a live database
made with SQLite's backup API, and its restore on a new driver node."""

from __future__ import annotations

import os
import sqlite3

import optuna
import pytest

from audiogan.sweep import study


def test_study_lives_locally_and_is_copied_and_restored(tmp_path, monkeypatch):
    monkeypatch.setenv(study.CACHE_ENV, str(tmp_path / "cache"))
    # A sweep on object storage: the live file is local, one per sweep URI.
    url = study.study_url("", "s3://bucket/sweeps/x", "x")
    assert url != study.study_url("", "s3://other/sweeps/x", "x")
    assert study.sqlite_path(url).startswith(str(tmp_path / "cache"))
    local = study.study_url("", str(tmp_path / "sweep"), "x")
    assert study.copy_target(local, str(tmp_path / "sweep")) is None  # already in the sweep
    assert study.study_url("postgresql://u@h/db", "s3://b/x", "x") == "postgresql://u@h/db"

    path = str(tmp_path / "live" / "optuna.db")
    live = f"sqlite:///{path}"
    s = optuna.create_study(study_name="x", storage=study.open_storage(live))
    s.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=3)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # A reader holding a transaction open does not block the next write (WAL).
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM trials").fetchone()
    s.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=1)
    reader.close()
    copy = str(tmp_path / "sweep-copy" / "optuna.db")
    assert study.backup(live, copy)
    assert sqlite3.connect(copy).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not os.path.exists(copy + "-wal")
    assert len(optuna.load_study(study_name="x", storage=f"sqlite:///{copy}").trials) == 4

    # A new node: the local file is gone; restore brings the copy back, once.
    os.remove(path)
    for stale in (path + "-wal", path + "-shm"):
        if os.path.exists(stale):
            os.remove(stale)
    assert study.restore(live, copy)
    assert not study.restore(live, copy)  # a live file is never overwritten
    assert len(optuna.load_study(study_name="x", storage=live).trials) == 4


def test_a_reader_creating_the_schema_at_the_same_moment_does_not_fail_the_sweep(tmp_path,
                                                                                monkeypatch):
    """optuna-dashboard (or any load_study) opening the file as the sweep starts creates the
    schema too; the loser of that race sees "table ... already exists" and opens again."""
    from sqlalchemy.exc import OperationalError

    real, calls = optuna.storages.RDBStorage, []

    class Racing(real):
        def __init__(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                real(*args, **kwargs)  # the other reader wins: the schema now exists
                raise OperationalError("CREATE TABLE studies", {},
                                       Exception("table studies already exists"))
            super().__init__(*args, **kwargs)

    class Broken(real):
        def __init__(self, *args, **kwargs):
            raise OperationalError("SELECT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", Racing)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    s = optuna.create_study(study_name="x", storage=study.open_storage(url))
    assert len(calls) == 2 and s.study_name == "x"
    monkeypatch.setattr(optuna.storages, "RDBStorage", Broken)
    with pytest.raises(OperationalError):  # any other database error is not retried
        study.open_storage(url)
