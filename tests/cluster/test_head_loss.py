"""A sweep on object storage survives losing its head: on Ray's fake multi-node cluster
(a private head with the fake_multinode autoscaler launching the worker nodes the trials
run on), the sweep is a `ray job` whose driver runs on the head; once two trials completed
and one checkpointed, every process of the cluster, head included, is SIGKILLed and the
cluster's directory -- the head's HOME, its study cache (the live SQLite study), Ray's temp
dir with Tune's local staging -- is deleted with it. A fresh cluster (another HOME, so the
study's local path differs and the searcher Tune pickled must be rebound) runs the same
sweep with `--resume`, from the bucket alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

import pandas as pd
import pyarrow.fs as pafs
import pytest
import yaml
from cluster_harness import BIN, LocalHead, fake_cluster_of, worker_nodes
from s3_server import s3_uri

from audiogan import storage
from tests.reliability.procs import record
from tests.sweep.conftest import SMOKE, write_notes_dataset

pytestmark = pytest.mark.ray

TRIALS = 3
STEPS = 60  # per trial, a checkpoint every 10
# A floor on step time (test hook), >= 15 s a trial whatever the machine, from the moment the
# second trial completes: only the trial running at the kill is slow. The study copy is
# written as a trial completes, before Tune starts the next trial (whose start takes ~3 s
# more), so the marker is in place before the third trial's first step.
STEP_SLEEP_S = 0.25
TUNE_SNAPSHOT_PERIOD_S = 2  # TUNE_GLOBAL_CHECKPOINT_S on the heads (Tune's own: >= 10 s)
TUNE_SNAPSHOT_S = 4  # wait past one snapshot
# One worker node launched with the head (the autoscaler's min_workers), as a cluster kept
# warm for sweeps: its start overlaps the job's (the first trial ran 6.6 s after submission,
# against 8.5-13.6 s with the node launched on demand; the resume gained little).
WARM = {"gpu.spot": 1}


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


def _submit(head: LocalHead, job_id: str, argv: list[str], env_vars: dict[str, str]) -> None:
    """`ray job submit` of `audiogan ARGV`: the driver runs on the head node."""
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "audiogan", *argv])
    done = subprocess.run(
        [os.path.join(BIN, "ray"), "job", "submit", "--no-wait", "--submission-id", job_id,
         "--runtime-env-json", json.dumps({"env_vars": env_vars}), "--",
         "sh", "-c", f"cd {shlex.quote(head.root)} && exec {command}"],
        env=head.job_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _job(head: LocalHead, job_id: str) -> tuple[str, str]:
    """(status, the job's log so far)."""
    status, body = head.get(f"/api/jobs/{job_id}")
    state = json.loads(body)["status"] if status == 200 else f"HTTP {status}"
    status, body = head.get(f"/api/jobs/{job_id}/logs")
    return state, json.loads(body).get("logs", "") if status == 200 else ""


def _head_env(root: pathlib.Path) -> dict[str, str]:
    """The head's own HOME and study cache, inside the cluster's directory."""
    (root / "home" / "cache").mkdir(parents=True)
    return {"HOME": str(root / "home"), "AUDIOGAN_STUDY_CACHE": str(root / "home" / "cache")}


@pytest.mark.slow
def test_head_lost_mid_sweep_resumes_on_a_new_cluster_from_the_bucket(moto_endpoint,
                                                                      tmp_path):
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
    slow = tmp_path / "slow"  # outside both clusters' directories
    hooks = {"step_sleep_s": STEP_SLEEP_S, "step_sleep_marker": str(slow)}
    job_env = {"AUDIOGAN_FAULT_HOOKS": json.dumps(hooks),
               "TUNE_GLOBAL_CHECKPOINT_S": str(TUNE_SNAPSHOT_PERIOD_S)}
    state: dict = {}

    def ready() -> bool:
        rows = _study_rows(sweep)
        done = {tid for _, s, tid in rows if s == "COMPLETE"}
        running = [tid for _, s, tid in rows if s == "RUNNING"]
        if len(done) >= 2:  # the third trial is slow (the resumed one is not)
            slow.touch()
        if len(done) < 2 or not running:
            return False
        if not _checkpoints(_listing(sweep), running[0]):
            return False
        state.setdefault("first_checkpoint_at", time.monotonic())
        state.update(done=done, running=running[0])
        # Past one Tune snapshot after the running trial's first checkpoint, so the restored
        # Tune knows one of its checkpoints (the study and the bucket know it already).
        return time.monotonic() - state["first_checkpoint_at"] > TUNE_SNAPSHOT_S

    with fake_cluster_of(WARM, env_for=_head_env) as head:
        old_root = head.root
        _submit(head, "headloss-a", argv, job_env)
        deadline = time.monotonic() + 400
        while not ready():
            status, logs = _job(head, "headloss-a")
            assert status in ("PENDING", "RUNNING") and time.monotonic() < deadline, \
                f"{status} before the head was lost:\n{logs[-4000:]}"
            time.sleep(0.5)
        nodes_at_kill = worker_nodes(head)
        killed: set[int] = set()
        for _ in range(3):  # the whole cluster at once, as a lost machine set would go
            pids = head.processes()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed |= set(pids)
            time.sleep(0.5)
    assert not os.path.exists(old_root)  # its HOME, cache and Ray dirs went with it
    before = _listing(sweep)  # what the bucket holds once the cluster is gone
    running = state["running"]
    steps_before = _steps(sweep, running, _checkpoints(before, running))
    slow.unlink()  # the resumed trial (its hooks restored by Tune) runs at full speed

    # Once its sweep has succeeded nothing on this cluster is needed: a 1 s SIGTERM grace.
    with fake_cluster_of(WARM, env_for=_head_env, stop_grace_s=1) as head:
        t0 = time.monotonic()
        _submit(head, "headloss-b", argv + ["--resume"], job_env)
        deadline = t0 + 400
        while (status := _job(head, "headloss-b"))[0] in ("PENDING", "RUNNING"):
            assert time.monotonic() < deadline, status[1][-4000:]
            time.sleep(1)
        resume_s = time.monotonic() - t0
        assert status[0] == "SUCCEEDED", status[1][-4000:]
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
           worker_nodes_at_kill=len(nodes_at_kill), processes_killed=len(killed),
           running_trial_resumed_from_step=meta["start_step"],
           newest_step_on_bucket_at_kill=max(steps_before.values()),
           leaderboard_rows=len(board), resume_seconds=round(resume_s, 1))
