"""Sweep faults: the driver SIGKILLed during the final stage's replicates then
`--resume`d; one trial raising among more trials than cores (peak memory measured).
SIGINT + resume is tests/sweep's; the driver SIGKILLed with its whole node mid-search,
resumed on a new one from object storage, is tests/cluster/test_head_loss.py."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import optuna
import pandas as pd
import pytest
import yaml

from audiogan.sweep.results import load_trials
from audiogan.sweep.spec import parse_spec
from tests.reliability.procs import Command, descendants, record, rss_bytes
from tests.reliability.sweep_loops import MESSAGE
from tests.sweep.conftest import SMOKE, write_notes_dataset

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def notes_data(tmp_path_factory) -> str:
    return write_notes_dataset(str(tmp_path_factory.mktemp("notes")))


def spec_raw(**extra) -> dict:
    raw = yaml.safe_load(open(SMOKE))
    raw.update({"max_critic_steps": 20, "grace_critic_steps": 10, **extra})
    return raw


def complete_trials(db: str, name: str) -> list:
    if not os.path.exists(db):
        return []
    try:
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    except (KeyError, ValueError, Exception):  # the driver may be creating it right now
        return []
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


class PeakRss:
    """Samples the summed RSS of this process and its descendants (driver + Ray)."""

    def __init__(self, period_s: float = 0.5) -> None:
        self.peak = self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period_s,), daemon=True)

    def _run(self, period_s: float) -> None:
        while not self._stop.is_set():
            pids = descendants(os.getpid())
            rss = rss_bytes(pids)
            if rss > self.peak:
                self.peak, self.peak_procs = rss, len(pids)
            self._stop.wait(period_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_raising_trial_errors_others_complete_with_more_trials_than_cores(
        ray_cluster, notes_data, tmp_path):
    from audiogan.sweep import run_sweep

    raw = spec_raw(num_samples=6, max_concurrent_trials=6)
    raw["overrides"] = {**raw["overrides"], "train.max_failures": 0}
    spec = parse_spec(raw)
    cores = int(ray_cluster.cluster_resources()["CPU"])
    sweep_dir = str(tmp_path / "queued")
    t0 = time.monotonic()
    with PeakRss() as mem:
        unfinished = run_sweep(spec, notes_data, sweep_dir, "queued",
                               loop="tests.reliability.sweep_loops:raising_loop")
    seconds = time.monotonic() - t0
    assert unfinished == 0
    trials = load_trials(sweep_dir, "eval/ndb", "min")
    assert len(trials) == 6 > cores
    errored = [t for t in trials if t.status == "ERROR"]
    assert len(errored) == 1 and errored[0].params["optim.lr_g"] == 1e-4
    error_txt = open(os.path.join(sweep_dir, f"trial_{errored[0].trial_id}", "error.txt")).read()
    assert MESSAGE in error_txt
    ok = [t for t in trials if t.status == "TERMINATED"]
    assert len(ok) == 5 and all(t.best_value is not None for t in ok)
    board = pd.read_csv(os.path.join(sweep_dir, "leaderboard.csv"))
    assert sorted(board["status"]) == ["ERROR"] + ["TERMINATED"] * 5
    record("sweep_queued_and_raising", trials=6, cores=cores, errored=1, completed=5,
           peak_rss_mib=round(mem.peak / 2 ** 20), processes_at_peak=mem.peak_procs,
           seconds=round(seconds, 1))


DRIVER = (
    "import sys\n"
    "from audiogan.sweep import run_sweep\n"
    "from audiogan.sweep.spec import load_spec\n"
    "sys.exit(run_sweep(load_spec(sys.argv[1]), sys.argv[2], sys.argv[3], 'final',\n"
    "                   resume=sys.argv[4] == 'resume', loop='tests.sweep.fake_loop:train_loop',\n"
    "                   final_eval='tests.sweep.fake_loop:final_evaluate'))\n")


@pytest.mark.slow
def test_driver_sigkill_during_replicates_then_resume_runs_the_final_stage_once(
        notes_data, tmp_path):
    """The stand-in loop (seconds per trial): the driver is killed while the replicates
    train; the resumed sweep finishes them, evaluates each checkpoint once, writes
    final.json, and trains no search trial or replicate twice."""
    from audiogan.sweep.final import read_final
    from audiogan.sweep.replicates import load_replicates
    from audiogan.sweep.spec import parse_spec

    raw = spec_raw(num_samples=2, baseline=False,
                   final={"top_k": 1, "n": 24, "ndb_k": 4, "bootstrap": 100, "replicates": 3})
    spec_path = tmp_path / "final.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    sweep_dir = tmp_path / "final"
    replicas = sweep_dir / "final" / "replicates"
    argv = [str(spec_path), notes_data, str(sweep_dir)]

    def replicate_started() -> bool:
        return (replicas / "tuner.pkl").exists() and any(
            (p / "result.json").exists() and (p / "result.json").stat().st_size
            for p in replicas.glob("trial_*"))

    first = Command(argv + ["new"], python_code=DRIVER)
    try:
        assert first.wait_for(replicate_started, 300, 0.2), first.output[-3000:]
        alive = first.proc.poll() is None
        first.signal(signal.SIGKILL)
        first.wait(60)
    finally:
        first.cleanup()
    assert alive, "the sweep finished before the kill"
    assert not (sweep_dir / "final" / "final.json").exists()
    second = Command(argv + ["resume"], python_code=DRIVER)
    try:
        rc = second.wait(400)
        left = second.leftovers()
    finally:
        second.cleanup()
    assert rc == 0, second.output[-4000:]
    spec = parse_spec(raw)
    board = pd.read_csv(sweep_dir / "leaderboard.csv")
    assert len(board) == 2 and set(board["status"]) == {"TERMINATED"}
    assert len(complete_trials(str(sweep_dir / "optuna.db"), "final")) == 2
    reps = load_replicates(spec, str(sweep_dir))
    assert sorted(t.replicate["seed"] for t in reps) == [1, 2, 3]
    assert {t.status for t in reps} == {"TERMINATED"}
    log = [json.loads(line)["evaluated"] for line in open(sweep_dir / "final" / "log.jsonl")]
    assert len(log) == len(set(log)) == 1 + 3  # the top trial, then each replicate: once
    doc = read_final(str(sweep_dir))
    assert [r["trial_id"] for r in doc["evaluations"]] == [log[0]]
    assert sorted(run["seed"] for run in doc["replicates"]["configs"][0]["runs"]) == [1, 2, 3]
    assert left == {}, left
    record("sweep_driver_sigkill_in_final_stage", search_trials=2, replicates=len(reps),
           evaluations=len(log), resume_seconds=round(second.elapsed_s, 1))
