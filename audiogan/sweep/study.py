"""Where a sweep's Optuna study lives, and how it survives readers and a lost driver node.

The choice: SQLite in WAL mode, a busy timeout, and consistent copies made with SQLite's
online backup API. (Optuna's JournalStorage was the alternative; SQLite keeps one file that
optuna-dashboard, `audiogan best` and plain `sqlite3` read, and its backup API gives an
atomic, consistent copy of a database that is being written.)

- The live study is a local SQLite file on the driver's node: `SWEEP_DIR/optuna.db` for a
  local sweep directory; for a sweep directory on object storage (SQLite needs a local
  file) `$AUDIOGAN_STUDY_CACHE` or `~/.cache/audiogan/optuna`, then `<name>-<hash of the
  sweep URI>/optuna.db` (two sweeps of the same name never share a study).
- WAL journal: readers (optuna-dashboard, `audiogan best`) neither block the driver's
  writes nor wait for them. With the default rollback journal a dashboard's read
  transaction makes the writer wait and, past the timeout, fail with "database is
  locked". The writer's connections wait up to `BUSY_TIMEOUT_S` for another writer.
- A sweep on object storage gets a copy after every completed trial (Tune callback,
  `audiogan.sweep.callbacks.StudyBackup`) and at the end: the backup API copies the live
  database into a temporary file, which is switched to a rollback journal (one
  self-contained file) and uploaded atomically as `SWEEP_DIR/optuna.db`. A byte copy of a
  WAL database can miss committed pages still in its `-wal` file.
- `--resume` on a new driver node, whose local file is missing, restores that copy first,
  and `bind`s this process's study URL and sweep directory: the searcher and the backup
  callback Tune unpickles were pickled on the old node, and take their study from
  `locate` (never from a pickled path, which may be a lost head's).
- A database URL (`optuna_storage: postgresql://user@host/db`) is used as it is: the
  choice for a cluster, where the driver and the readers may be on any node.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
from typing import Any

from audiogan import storage
from audiogan.sweep.keys import STUDY_FILE

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 60.0
CACHE_ENV = "AUDIOGAN_STUDY_CACHE"
SQLITE = "sqlite:///"


def study_url(database_url: str, sweep_dir: str, name: str) -> str:
    """The study's storage URL: the spec's database URL, else a local SQLite file."""
    if database_url:
        return database_url
    if storage.is_uri(sweep_dir):
        root = os.environ.get(CACHE_ENV) or os.path.expanduser("~/.cache/audiogan/optuna")
        tag = hashlib.sha1(sweep_dir.encode()).hexdigest()[:8]
        return SQLITE + os.path.join(root, f"{name}-{tag}", STUDY_FILE)
    return SQLITE + os.path.join(os.path.abspath(sweep_dir), STUDY_FILE)


# Study name -> (URL, sweep directory) as this driver process resolved them (`run_sweep`).
_BOUND: dict[str, tuple[str, str]] = {}


def bind(name: str, url: str, sweep_dir: str) -> None:
    _BOUND[name] = (url, sweep_dir)


def locate(database_url: str, sweep_dir: str, name: str) -> tuple[str, str | None]:
    """(the study's URL, where its copy goes or None) for this driver process: what
    `bind` recorded, else derived from the spec's database URL and the sweep directory."""
    url, where = _BOUND.get(name) or (study_url(database_url, sweep_dir, name), sweep_dir)
    return url, copy_target(url, where)


def sqlite_path(url: str) -> str | None:
    return url[len(SQLITE):] if url.startswith(SQLITE) else None


def copy_target(url: str, sweep_dir: str) -> str | None:
    """Where the study's consistent copy goes: the sweep directory, when the live file is
    elsewhere (a sweep on object storage); None when nothing needs copying."""
    path = sqlite_path(url)
    target = storage.join(sweep_dir, STUDY_FILE)
    if path is None or (not storage.is_uri(target) and os.path.abspath(target) == path):
        return None
    return target


def prepare(url: str) -> None:
    """Create the SQLite file's directory and switch the database to WAL (a persistent
    setting of the file: every later connection, the dashboard's too, uses it)."""
    path = sqlite_path(url)
    if path is None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        conn.close()
    if mode.lower() != "wal":
        log.warning("SQLite study %s is in %s mode, not WAL (filesystem without shared "
                    "memory?): readers may make the sweep wait", path, mode)


def open_storage(url: str) -> Any:
    """The driver's `optuna.storages.RDBStorage` (SQLite: WAL + busy timeout)."""
    import optuna

    if sqlite_path(url) is None:
        return optuna.storages.RDBStorage(url)
    prepare(url)
    from sqlalchemy.exc import OperationalError

    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": {"timeout": BUSY_TIMEOUT_S}})
        except OperationalError as e:
            # Optuna creates the schema check-then-create; a reader opening the file at the
            # same moment (optuna-dashboard, a script) creates it too, and one of the two
            # fails with "table ... already exists". The schema is complete on the next try.
            if "already exists" not in str(e) or attempt == 2:
                raise
            log.info("study schema created concurrently by another reader; opening again")
    raise AssertionError("unreachable")


def backup(url: str, target: str) -> bool:
    """Copy the live SQLite study to `target` (a path or URI) consistently and atomically;
    False when there is nothing to copy."""
    path = sqlite_path(url)
    if path is None or not os.path.exists(path):
        return False
    tmp_dir = tempfile.mkdtemp(prefix="audiogan-study-")
    try:
        tmp = os.path.join(tmp_dir, STUDY_FILE)
        src = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            # One self-contained file: the copy must not need a -wal file beside it.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
            src.close()
        with open(tmp, "rb") as f:
            storage.write_bytes_atomic(target, f.read())
        return True
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def restore(url: str, source: str) -> bool:
    """Put the sweep directory's copy in place when the live local file is missing (a new
    driver node resuming the sweep); False when nothing was restored."""
    path = sqlite_path(url)
    if path is None or os.path.exists(path) or not storage.exists(source):
        return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for stale in (path + "-wal", path + "-shm"):  # another database's journal: never apply it
        if os.path.exists(stale):
            os.unlink(stale)
    storage.write_bytes_atomic(path, storage.read_bytes(source))
    log.info("restored the Optuna study from %s", source)
    return True


def fold_wal(url: str) -> None:
    """Write the WAL back into the database file (end of a sweep), so the file alone holds
    every trial even for a reader that copies only `optuna.db`."""
    path = sqlite_path(url)
    if path is None or not os.path.exists(path):
        return
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
