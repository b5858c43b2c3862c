"""Training faults: a Ray Train worker SIGKILLed mid-run, a corrupt latest checkpoint, a
failure while writing a checkpoint. NaN injection is covered by tests/train (see
results/reliability.md); here its run only feeds the process-leak check (test_processes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time

import pytest

from audiogan.cluster.hooks import FaultHooks
from audiogan.config import resolve
from audiogan.train import checkpoint as ckpt
from audiogan.train.loop import train_loop
from audiogan.cluster.session import LocalSession
from tests.fixtures import make_dataset
from tests.reliability.procs import Command, descendants, record

CKPT_EVERY = 10
TINY = ["model.d=2", "optim.batch_size=4", f"train.eval_every={CKPT_EVERY}",
        "train.report_every=2", "metrics.n_samples=8", "metrics.ndb_k=2", "train.keep_best=3",
        "train.max_failures=2"]
STEP = re.compile(r"pid=(\d+)[^)]*\).*\bstep (\d+)/(\d+)")
RESUME = re.compile(r"resuming from (\S+) at step (\d+)")


def train_argv(data, out, total_steps, workers=2):
    argv = ["train", "pianogan-cpu", "--data", str(data), "--out", str(out),
            "--workers", str(workers), "--total-steps", str(total_steps)]
    for o in TINY:
        argv += ["--set", o]
    return argv


def latest_registered(out) -> str | None:
    """The checkpoint Ray Train has committed (what a restart would resume from)."""
    try:
        snap = json.load(open(os.path.join(out, "checkpoint_manager_snapshot.json")))
    except (OSError, ValueError):
        return None
    latest = snap.get("latest_checkpoint_result") or {}
    return latest.get("checkpoint_dir_name")


def steps_by_pid(output: str) -> dict[int, list[int]]:
    got: dict[int, list[int]] = {}
    for line in output.splitlines():
        m = STEP.search(line)
        if m:
            got.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    return got


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """`audiogan train` (2 DDP workers); one worker SIGKILLed mid-interval after the first
    committed checkpoint; the run recovers by itself."""
    root = tmp_path_factory.mktemp("killrun")
    data = make_dataset(root / "data", "notes", n_train=16, n_validation=8, n_test=4)
    out = root / "run"
    cmd = Command(train_argv(data, out, total_steps=3 * CKPT_EVERY))
    try:
        def ready():
            steps = [s for v in steps_by_pid(cmd.output).values() for s in v]
            return latest_registered(out) is not None and steps and \
                max(steps) >= CKPT_EVERY + CKPT_EVERY // 2
        assert cmd.wait_for(ready, 240), cmd.output[-3000:]
        workers = [p for p in descendants(cmd.proc.pid)
                   if "RayTrainWorker" in open(f"/proc/{p}/cmdline", "rb").read().decode(
                       errors="replace")]
        assert workers, cmd.output[-2000:]
        victim = max(workers)
        committed = latest_registered(out)
        os.kill(victim, signal.SIGKILL)
        t_kill = time.monotonic() - cmd.t0
        rc = cmd.wait(900)
        left = cmd.leftovers()
    finally:
        cmd.cleanup()
    return {"root": root, "data": data, "out": out, "rc": rc, "output": cmd.output,
            "lines": cmd.lines, "t_kill": t_kill, "victim": victim, "workers": workers,
            "committed": committed, "left": left, "cmd": cmd}


@pytest.mark.slow
def test_worker_sigkill_recovers_losing_at_most_one_interval(killed_run):
    r = killed_run
    assert r["rc"] == 0, r["output"][-3000:]
    assert r["left"] == {}, r["left"]           # normal exit: no Ray process outlives it
    by_pid = steps_by_pid(r["output"])
    first_pid = next(iter(by_pid))
    before_kill = max(by_pid[first_pid])
    resumed = [RESUME.search(line) for line in r["output"].splitlines()]
    resumed = [m for m in resumed if m]
    assert resumed, r["output"][-3000:]
    resume_step = int(resumed[0].group(2))
    redone = before_kill - resume_step
    assert 0 <= redone <= CKPT_EVERY
    final = ckpt.load_checkpoint(str(r["out"] / ckpt.checkpoint_name(3 * CKPT_EVERY)))
    assert final.meta["step"] == 3 * CKPT_EVERY and final.meta["start_step"] == resume_step
    assert final.meta["critic_steps"] == 3 * CKPT_EVERY * final.cfg.loss.n_critic
    t_first_new = next(t for t, line in r["lines"]
                       if (m := STEP.search(line)) and int(m.group(1)) != first_pid)
    record("train_worker_sigkill", workers=2, ckpt_every=CKPT_EVERY,
           last_step_before_kill=before_kill, committed_at_kill=r["committed"],
           resumed_from_step=resume_step, steps_redone=redone,
           seconds_kill_to_first_new_step=round(t_first_new - r["t_kill"], 1),
           total_seconds=round(r["lines"][-1][0], 1))


@pytest.mark.slow
def test_corrupt_latest_checkpoint_warns_and_resumes_from_previous(killed_run):
    r = killed_run
    out = r["out"]
    latest = out / ckpt.checkpoint_name(3 * CKPT_EVERY)
    previous = ckpt.checkpoint_name(2 * CKPT_EVERY)
    assert (out / previous).is_dir()          # keep_best=3: the older checkpoints are kept
    blob = (latest / ckpt.MODEL).read_bytes()
    (latest / ckpt.MODEL).write_bytes(blob[: len(blob) // 3])  # a torn write
    cmd = Command(train_argv(r["data"], out, total_steps=4 * CKPT_EVERY, workers=1))
    try:
        rc = cmd.wait(900)
        left = cmd.leftovers()
    finally:
        cmd.cleanup()
    assert rc == 0, cmd.output[-3000:]
    warning = [line for line in cmd.output.splitlines() if "checkpoint unusable" in line]
    assert warning and "truncated or corrupt" in warning[0] and previous in warning[0]
    resumed = RESUME.search(cmd.output)
    assert resumed and int(resumed.group(2)) == 2 * CKPT_EVERY
    final = ckpt.load_checkpoint(str(out / ckpt.checkpoint_name(4 * CKPT_EVERY)))
    assert final.meta["start_step"] == 2 * CKPT_EVERY
    assert left == {}, left
    record("train_corrupt_latest", corrupt=latest.name, resumed_from=previous,
           steps_redone=CKPT_EVERY, warning=warning[0].split(") ", 1)[-1][:160],
           seconds=round(cmd.elapsed_s, 1))


def test_failure_while_writing_checkpoint_keeps_previous_valid(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data", "notes", n_train=8)
    cfg = resolve("pianogan-cpu", ["model.d=2", "optim.batch_size=2", "train.eval_every=2",
                                   "train.report_every=1", "metrics.n_samples=8",
                                   "metrics.ndb_k=2", "train.total_steps=6"])
    session = LocalSession(checkpoint_root=str(tmp_path / "ck"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    os.makedirs(tmp_path / "tmp")
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with pytest.raises(OSError, match="No space left on device"):
        train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session,
                   hooks=FaultHooks(ckpt_write_fail_step=4))
    assert [os.path.basename(c) for c in session.checkpoints] == ["checkpoint_00000002"]
    assert os.listdir(tmp_path / "ck") == ["checkpoint_00000002"]
    loaded = ckpt.load_checkpoint(session.checkpoints[0])
    assert loaded.meta["step"] == 2
    leftovers = [f for _, dirs, files in os.walk(tmp_path / "tmp") for f in dirs + files
                 if "ckpt" in f or f == ckpt.MODEL]
    assert leftovers == []                      # the half-written model.pt was removed
    # and the run resumes from it
    s2 = LocalSession(checkpoint_root=str(tmp_path / "ck2"), resume_from=session.checkpoints[0])
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=s2)
    assert [r["progress/step"] for r in s2.reports] == [3, 4, 5, 6]


def test_corrupt_latest_local_falls_back_and_none_left_is_an_error(tmp_path, caplog):
    data = make_dataset(tmp_path / "data", "notes", n_train=8)
    cfg = resolve("pianogan-cpu", ["model.d=2", "optim.batch_size=2", "train.eval_every=2",
                                   "train.report_every=2", "metrics.n_samples=8",
                                   "metrics.ndb_k=2", "train.total_steps=4"])
    session = LocalSession(checkpoint_root=str(tmp_path / "ck"))
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session)
    first, latest = session.checkpoints
    os.remove(os.path.join(latest, ckpt.META))   # an incomplete copy
    loaded, path = ckpt.load_for_resume(latest)
    assert path == first and loaded.meta["step"] == 2
    assert any("checkpoint unusable" in r.message and "no meta.json" in r.message
               for r in caplog.records)
    shutil.rmtree(first)
    from audiogan.errors import UserError
    with pytest.raises(UserError, match="no meta.json"):
        ckpt.load_for_resume(latest)


def test_step_sleep_with_a_marker_sleeps_only_while_the_marker_exists(tmp_path, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    marker = tmp_path / "slow"
    hooks = FaultHooks.from_dict({"step_sleep_s": 0.25, "step_sleep_marker": str(marker)})
    hooks.after_step(1, 0, 1)
    marker.touch()
    hooks.after_step(2, 0, 1)
    marker.unlink()
    hooks.after_step(3, 0, 1)
    FaultHooks(step_sleep_s=0.5).after_step(4, 0, 1)  # no marker: always
    assert slept == [0.25, 0.5]
