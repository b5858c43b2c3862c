"""One tiny notes dataset and ONE small smoke sweep shared by the sweep tests
(test_sweep.py's assertions; test_watch.py's browser checks watch it while it runs)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest

from audiogan import storage
from audiogan.config import DataConfig
from audiogan.data import scaling, shards
from audiogan.sweep.keys import TUNER_STATE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(REPO, "sweeps", "pianogan-smoke.yaml")
NAME = "smoke"
WATCH_TESTS = "test_watch.py::"


def write_notes_dataset(root: str, n_train: int = 24, n_val: int = 8, seed: int = 0) -> str:
    """Two note 'styles' (low/slow, high/fast) as raw [N, 256, 3] windows + manifest."""
    rng = np.random.default_rng(seed)
    keys, splits, labels, xs = [], [], [], []
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_val)):
        for i in range(n):
            c = i % 2
            x = np.zeros((256, 3), np.float32)
            x[:, 0] = np.clip(np.rint(48 + 24 * c + rng.normal(0, 3, 256)), 21, 108)
            x[:, 1] = rng.exponential(0.05 * (c + 1), 256)
            x[:, 2] = rng.exponential(0.2 * (c + 1), 256) + 0.01
            keys.append(f"{split}/{i:04d}.mid#0")
            splits.append(split)
            labels.append("")
            xs.append(x)
    os.makedirs(os.path.join(root, shards.SHARDS), exist_ok=True)
    pq.write_table(shards.make_table(keys, splits, labels, np.stack(xs)),
                   os.path.join(root, shards.SHARDS, "part-00000.parquet"))
    manifest = {
        "schema_version": shards.SCHEMA_VERSION, "kind": "notes", "dataset": "synthetic",
        "example_shape": [256, 3], "counts": {"train": n_train, "validation": n_val, "test": n_val},
        "files": {"train": 1, "validation": 1, "test": 1}, "labels": [""],
        "note_scaling": scaling.note_constants(DataConfig()), "params": {}, "repaired": {},
        "rejected": {}, "source_fingerprint": "test", "versions": {}, "created": "test",
    }
    storage.write_json_atomic(os.path.join(root, shards.MANIFEST), manifest)
    return root


@pytest.fixture(scope="session")
def notes_data(tmp_path_factory) -> str:
    return write_notes_dataset(str(tmp_path_factory.mktemp("notes")))


def _completed_trials(db: str) -> int:
    """Completed trials in the live study, read-only: `optuna.load_study` would create the
    schema and race the sweep's own CREATE TABLE ("table ... already exists" killed the
    sweep's driver once in CI, before it had made its Tuner)."""
    if not os.path.exists(db):
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
            return c.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # no tables yet
        return 0


def _start_and_interrupt(args: list[str], sweep_dir: str) -> dict:
    """Start the sweep; SIGINT it once a trial finished (or after 240 s)."""
    from tests.sweep.watcher import LiveRun

    db = os.path.join(sweep_dir, "optuna.db")
    first = LiveRun(args, cwd=REPO)
    deadline = time.time() + 240
    while _completed_trials(db) < 1 and first.live() and time.time() < deadline:
        time.sleep(0.5)
    interrupted = first.live()
    first.proc.send_signal(signal.SIGINT)
    try:
        out1 = first.finish(timeout_s=120)
    except subprocess.TimeoutExpired:  # a start that hangs is reported with its output
        first.proc.kill()
        out1 = first.finish(timeout_s=30) + "\n[killed: no exit 120 s after SIGINT]"
    return {"interrupted": interrupted, "rc1": first.proc.returncode, "out1": out1,
            "started": os.path.exists(os.path.join(sweep_dir, TUNER_STATE)),
            "completed_before_resume": _completed_trials(db)}


def browser_skip_reason() -> str | None:
    """Why the browser checks cannot run here (None: they can). CI installs the browser
    and sets AUDIOGAN_REQUIRE_BROWSER=1, which turns a missing one into a failure."""
    from audiogan.watch.browser import unavailable

    reason = unavailable()
    if reason and os.environ.get("AUDIOGAN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"AUDIOGAN_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    return reason


def _watcher(request, root: str, notes_data: str):
    """A Watcher when test_watch.py is in this run and a browser is here, else None."""
    if not any(WATCH_TESTS in item.nodeid for item in request.session.items):
        return None
    if browser_skip_reason():
        return None
    import ray

    from tests.sweep.watcher import Watcher

    request.getfixturevalue("ray_cluster")  # the 2-worker train run joins it
    work = os.path.join(root, "watch")
    os.makedirs(work)
    # The session Ray's own dashboard, asked of Ray: RAY_API_SERVER_ADDRESS in this process
    # is whatever the last pin_dashboard_port call exported (a test left it pointing at a
    # closed port once, and every cluster page was refused).
    return Watcher(os.path.join(root, NAME), work, notes_data, REPO,
                   cluster_dashboard="http://" + ray._private.worker.get_dashboard_url(),
                   gcs_address=ray.get_runtime_context().gcs_address)


@pytest.fixture(scope="session")
def smoke_sweep(request, notes_data, tmp_path_factory):
    """The smoke sweep: started, SIGINT once a trial finished, then `--resume`d to the end
    (watched in a browser while the resumed run is live, when test_watch.py runs)."""
    from tests.sweep.watcher import LiveRun

    root = str(tmp_path_factory.mktemp("sweeps"))
    sweep_dir = os.path.join(root, NAME)
    # --data relative to the command's working directory, as a user types it (trials run
    # elsewhere: a relative path once broke every trial).
    args = [sys.executable, "-m", "audiogan", "sweep", SMOKE, "--data",
            os.path.relpath(notes_data, REPO), "--storage", root, "--name", NAME]
    t0 = time.monotonic()
    first = _start_and_interrupt(args, sweep_dir)
    if not first["started"]:
        # A start that made no Tuner is reported (pytest's warnings summary), not hidden,
        # and started once more; a second failure fails the fixture with both outputs.
        warnings.warn(f"smoke sweep's first start made no Tuner (rc {first['rc1']}): "
                      + first["out1"][-3000:])
        shutil.rmtree(sweep_dir, ignore_errors=True)
        retry = _start_and_interrupt(args, sweep_dir)
        assert retry["started"], (first["out1"][-2000:], retry["out1"][-2000:])
        first = retry
    # The watcher (browser, 2-worker train run) starts only with the resumed run: it would
    # slow the first start, whose interruption point is timed.
    watcher = _watcher(request, root, notes_data)
    try:
        second = LiveRun(args + ["--resume"], cwd=REPO)
        if watcher is not None:
            watcher.watch(second)
        out2 = second.finish(timeout_s=300)
        sweep_s = time.monotonic() - t0
    finally:  # the 2-worker run holds the session cluster's CPUs until it is stopped
        watched = watcher.finish() if watcher is not None else None
    assert second.proc.returncode == 0, out2[-3000:]
    return {"dir": sweep_dir, "root": root, **first, "out2": out2, "watch": watched,
            "sweep_seconds": round(sweep_s, 1), "total_seconds": round(time.monotonic() - t0, 1)}
