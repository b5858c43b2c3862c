"""A sweep on object storage survives losing its head: everything on the head node -- the
driver, its Ray, the live SQLite study, Tune's local staging, the home and cache
directories -- is SIGKILLed and deleted mid-sweep; a new head resumes from the bucket alone.

The head is the `audiogan sweep` process with the Ray it starts (one node: the driver's
node is the one whose loss matters; losing a worker node is
test_fake_cluster.test_worker_node_lost_mid_trial_is_retried_from_its_checkpoint). Each
head has its own HOME, AUDIOGAN_STUDY_CACHE and Ray temp dir, so the new head's study path
differs from the old one's: the searcher Tune pickled on the old head must be rebound.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid

import pandas as pd
import pyarrow.fs as pafs
import pytest
import yaml
from s3_server import s3_uri

from audiogan import storage
from tests.reliability.procs import Command, record
from tests.sweep.conftest import SMOKE, write_notes_dataset

pytestmark = pytest.mark.ray

TRIALS = 3
STEPS = 60  # per trial, a checkpoint every 10
STEP_SLEEP_S = 0.25  # a floor on step time (test hook): >= 15 s a trial, whatever the machine
TUNE_SNAPSHOT_PERIOD_S = 2  # TUNE_GLOBAL_CHECKPOINT_S on the heads (Tune's own: >= 10 s)
TUNE_SNAPSHOT_S = 4  # wait past one snapshot


def _study_rows(sweep: str) -> list[tuple[int, str, str]]:
    """(number, state, Tune trial id) of every trial in the study copy on the bucket."""
    copy = storage.join(sweep, "optuna.db")
    if not storage.exists(copy):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "optuna.db")
        with open(path, "wb") as f:
            f.write(storage.read_bytes(copy))
        conn = sqlite3.connect(path)
        try:
            rows = conn.execute(
                "SELECT t.number, t.state, a.value_json FROM trials t LEFT JOIN "
                "trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'tune_trial_id'"
            ).fetchall()
        finally:
            conn.close()
    return [(n, state, json.loads(v) if v else "") for n, state, v in rows]


def _listing(sweep: str) -> dict[str, int]:
    """Every object under the sweep directory on the bucket: key -> size."""
    fs, root = storage.resolve(sweep)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path[len(root) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}


def _checkpoints(listing: dict[str, int], trial_id: str) -> set[str]:
    return {k.split("/")[1] for k in listing
            if k.startswith(f"trial_{trial_id}/checkpoint_") and k.endswith("/meta.json")}


def _steps(sweep: str, trial_id: str, names: set[str]) -> dict[str, int]:
    """Checkpoint name -> its training step (Tune names a trial's checkpoints by count)."""
    return {n: storage.read_json(storage.join(sweep, f"trial_{trial_id}", n, "meta.json"))["step"]
            for n in names}


@pytest.mark.slow
def test_head_lost_mid_sweep_resumes_on_a_new_head_from_the_bucket(moto_endpoint, tmp_path):
    base = s3_uri(moto_endpoint, f"headloss-{uuid.uuid4().hex[:8]}")
    local_data = write_notes_dataset(str(tmp_path / "notes"))
    data = storage.join(base, "data")
    fs, inside = storage.resolve(data)
    pafs.copy_files(local_data, inside, destination_filesystem=fs)  # the data lives off-head
    spec = yaml.safe_load(open(SMOKE))
    # One trial at a time, each STEPS steps of >= STEP_SLEEP_S with a checkpoint every 10;
    # no ASHA rung before the end (a stopped trial would end before the kill).
    spec.update(num_samples=TRIALS, max_concurrent_trials=1, max_critic_steps=STEPS,
                grace_critic_steps=STEPS, eval_critic_steps=10, baseline=False)
    spec["overrides"]["loss.n_critic"] = 1
    spec["search"] = {k: v for k, v in spec["search"].items() if k.startswith("optim.")}
    spec_path = tmp_path / "hl.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    sweep = storage.join(base, "hl")
    argv = ["sweep", str(spec_path), "--data", data, "--storage", base, "--name", "hl"]

    def head_env(name: str) -> dict[str, str]:
        home = tmp_path / name
        (home / "cache").mkdir(parents=True)
        return {"HOME": str(home), "AUDIOGAN_STUDY_CACHE": str(home / "cache"),
                "AUDIOGAN_FAULT_HOOKS": json.dumps({"step_sleep_s": STEP_SLEEP_S}),
                "TUNE_GLOBAL_CHECKPOINT_S": str(TUNE_SNAPSHOT_PERIOD_S)}

    first = Command(argv, env=head_env("head-a"))
    state: dict = {}

    def ready() -> bool:
        rows = _study_rows(sweep)
        done = {tid for _, s, tid in rows if s == "COMPLETE"}
        running = [tid for _, s, tid in rows if s == "RUNNING"]
        if len(done) < 2 or not running:
            return False
        if not _checkpoints(_listing(sweep), running[0]):
            return False
        state.setdefault("first_checkpoint_at", time.monotonic())
        state.update(done=done, running=running[0])
        # Past one Tune snapshot after the running trial's first checkpoint, so the restored
        # Tune knows one of its checkpoints (the study and the bucket know it already).
        return time.monotonic() - state["first_checkpoint_at"] > TUNE_SNAPSHOT_S

    try:
        assert first.wait_for(ready, 300, 0.5), first.output[-4000:]
        alive = first.proc.poll() is None
        killed = first.cleanup()  # SIGKILL: the driver and every process of its Ray
    finally:
        first.cleanup()
    assert alive, "the sweep ended before the head was lost"
    shutil.rmtree(tmp_path / "head-a")
    shutil.rmtree(first.tmp, ignore_errors=True)
    before = _listing(sweep)  # what the bucket holds once the head is gone
    running = state["running"]
    steps_before = _steps(sweep, running, _checkpoints(before, running))

    second = Command(argv + ["--resume"], env=head_env("head-b"))
    try:
        rc = second.wait(400)
    finally:
        second.cleanup()
    assert rc == 0, second.output[-4000:]
    board = pd.read_csv(io.BytesIO(storage.read_bytes(storage.join(sweep, "leaderboard.csv"))))
    assert len(board) == TRIALS and board["trial_id"].is_unique, board.to_string()
    assert set(board["status"]) == {"TERMINATED"}, board.to_string()
    rows = _study_rows(sweep)
    complete = sorted(tid for _, s, tid in rows if s == "COMPLETE")
    assert complete == sorted(board["trial_id"]), rows
    after = _listing(sweep)
    # Completed trials were not run again: nothing of theirs was written after the kill.
    for tid in state["done"]:
        theirs = {k: v for k, v in after.items() if k.startswith(f"trial_{tid}/")
                  and "/checkpoint_" in k}
        assert theirs == {k: v for k, v in before.items() if k.startswith(f"trial_{tid}/")
                          and "/checkpoint_" in k}, tid
    # The running trial continued from one of its checkpoints on the bucket (the newest
    # Tune's last snapshot knew), not from scratch.
    steps_after = _steps(sweep, running, _checkpoints(after, running))
    meta = storage.read_json(storage.join(sweep, f"trial_{running}",
                                          max(steps_after, key=steps_after.get), "meta.json"))
    assert meta["step"] == STEPS, meta
    assert meta["start_step"] > 0 and meta["start_step"] in steps_before.values(), \
        (meta, steps_before)
    record("head_lost", trials=TRIALS, complete_at_kill=len(state["done"]),
           processes_killed=len(killed), running_trial_resumed_from_step=meta["start_step"],
           newest_step_on_bucket_at_kill=max(steps_before.values()),
           leaderboard_rows=len(board), resume_seconds=round(second.elapsed_s, 1))
