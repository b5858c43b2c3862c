"""One multi-objective sweep of the stand-in loop (known objectives), with a conditional
search space, the paper's baseline, the final stage (stand-in evaluation, 3-seed
replicates) and an optuna-dashboard reader running against the study the whole time.
Its records feed every assertion below."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
import yaml

from audiogan.cli import main
from audiogan.sweep.final import read_final
from audiogan.sweep.keys import CRITIC_STEPS
from audiogan.sweep.objectives import Objective, Selection, select
from audiogan.sweep.replicates import load_replicates
from audiogan.sweep.results import load_trials
from audiogan.sweep.spec import parse_spec
from tests.sweep.conftest import REPO, SMOKE

pytestmark = pytest.mark.ray
NAME = "multi"
OBJECTIVES = (Objective("eval/ndb", "min"), Objective("eval/note_overlap", "max"))
SELECT = Selection("lexicographic", tolerance={"eval/ndb": 0.05})


def _spec():
    raw = yaml.safe_load(open(SMOKE))
    for key in ("metric", "mode"):
        raw.pop(key)
    raw["search"].pop("loss.gp_weight")
    raw["search"].update({
        "loss.kind": {"type": "choice", "values": ["wgan-gp", "r1"]},
        "loss.gp_weight": {"type": "loguniform", "low": 1, "high": 100,
                           "when": {"loss.kind": "wgan-gp"}},
        "loss.r1_weight": {"type": "loguniform", "low": 0.1, "high": 10,
                           "when": {"loss.kind": "r1"}}})
    raw.update({
        "num_samples": 6, "baseline": True, "optuna_seed": 3,
        "objectives": [{"metric": "eval/ndb"}, {"metric": "eval/note_overlap", "mode": "max"}],
        "select": {"rule": "lexicographic", "tolerance": {"eval/ndb": 0.05}},
        "final": {"top_k": 2, "n": 48, "ndb_k": 4, "bootstrap": 100, "replicates": 3}})
    return parse_spec(raw)


@pytest.fixture(scope="module")
def multi(ray_cluster, notes_data, tmp_path_factory):
    from audiogan.sweep import run_sweep

    root = tmp_path_factory.mktemp("multi")
    sweep_dir = str(root / NAME)
    url = f"sqlite:///{sweep_dir}/optuna.db"
    stop, out = str(root / "stop"), str(root / "reader.json")
    reader = subprocess.Popen([sys.executable, "-m", "tests.sweep.dashboard_reader", url, NAME,
                               out, stop], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    t0 = time.monotonic()
    try:
        unfinished = run_sweep(_spec(), notes_data, sweep_dir, NAME,
                               loop="tests.sweep.fake_loop:train_loop",
                               final_eval="tests.sweep.fake_loop:final_evaluate")
    finally:
        open(stop, "w").close()
        reader.wait(timeout=60)
    seconds = time.monotonic() - t0
    best_out = str(root / "best")
    rc = main(["best", sweep_dir, "--out", best_out, "--pareto", "--page-seeds", "0"])
    return {"dir": sweep_dir, "unfinished": unfinished, "reader": json.load(open(out)),
            "best": best_out, "best_rc": rc, "seconds": seconds}


def _dominated(a, b):  # b dominates a (ndb min, overlap max)
    return (b[0] <= a[0] and b[1] >= a[1]) and (b[0] < a[0] or b[1] > a[1])


def _brute_front(points):
    return {key for key, v in points.items()
            if not any(_dominated(v, w) for other, w in points.items() if other != key)}


def _evaluations(trial):
    h = trial.history
    rows = h.dropna(subset=["eval/ndb", "eval/note_overlap"])
    return {(trial.trial_id, int(r[CRITIC_STEPS])): (r["eval/ndb"], r["eval/note_overlap"])
            for _, r in rows.iterrows()}


def test_sweep_and_final_stage_complete(multi):
    assert multi["unfinished"] == 0 and multi["best_rc"] == 0
    trials = load_trials(multi["dir"], OBJECTIVES, selection=SELECT)
    assert len(trials) == 6 and {t.status for t in trials} == {"TERMINATED"}
    # Conditional parameters exist only under their parent's value.
    for t in trials:
        assert ("loss.gp_weight" in t.params) == (t.params["loss.kind"] == "wgan-gp")
        assert ("loss.r1_weight" in t.params) == (t.params["loss.kind"] == "r1")
    resolved = yaml.safe_load(open(os.path.join(multi["dir"], "sweep.yaml")))["resolved"]
    assert resolved["optuna_seed"] == 3 and resolved["optuna_seed_from"] == "spec"
    print(f"FIGURES multi-objective sweep + final stage: {multi['seconds']:.1f} s")


def test_the_sweep_returns_exactly_the_non_dominated_set(multi):
    trials = load_trials(multi["dir"], OBJECTIVES, selection=SELECT)
    points = {k: v for t in trials for k, v in _evaluations(t).items()}
    expected = _brute_front(points)
    pareto = pd.read_csv(os.path.join(multi["best"], "pareto.csv"))
    got = {(r.trial_id, int(r.critic_steps)) for r in pareto.itertuples()}
    assert got == expected and len(got) >= 2
    for r in pareto.itertuples():  # every Pareto checkpoint copied, and it is that evaluation
        state = json.load(open(os.path.join(multi["best"], r.copied_to, "state.json")))
        n_critic = next(t for t in trials if t.trial_id == r.trial_id).params["loss.n_critic"]
        assert state["step"] * n_critic == r.critic_steps
    assert os.path.getsize(os.path.join(multi["best"], "plots", "pareto_front.png")) > 0


def test_each_trial_keeps_its_pareto_front_of_checkpoints(multi):
    for t in load_trials(multi["dir"], OBJECTIVES, selection=SELECT):
        mine = _evaluations(t)
        front = {k[1] for k in _brute_front(mine)}
        tdir = os.path.join(multi["dir"], f"trial_{t.trial_id}")
        n_critic = t.params["loss.n_critic"]
        kept = {json.load(open(os.path.join(tdir, d, "state.json")))["step"] * n_critic
                for d in os.listdir(tdir) if d.startswith("checkpoint_")}
        assert front <= kept <= front | {t.last_critic_steps}, t.trial_id


def test_optuna_is_told_one_evaluations_vector_chosen_by_the_rule(multi):
    study = optuna.load_study(study_name=NAME,
                              storage=f"sqlite:///{multi['dir']}/optuna.db")
    assert len(study.directions) == 2
    by_id = {t.trial_id: t for t in load_trials(multi["dir"], OBJECTIVES, selection=SELECT)}
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 6
    for ot in done:
        trial = by_id[ot.user_attrs["tune_trial_id"]]
        vectors = [{"eval/ndb": a, "eval/note_overlap": b}
                   for a, b in _evaluations(trial).values()]
        pick = vectors[select(vectors, OBJECTIVES, SELECT)]
        assert ot.values == [pick["eval/ndb"], pick["eval/note_overlap"]]
    # The paper's recipe was enqueued once, first.
    assert study.trials[0].params["loss.kind"] == "wgan-gp"
    assert study.trials[0].params["loss.gp_weight"] == 10.0


def test_replicates_differ_only_in_their_seed(multi):
    spec = _spec()
    trials = {t.trial_id: t for t in load_trials(multi["dir"], OBJECTIVES, selection=SELECT)}
    replicas = load_replicates(spec, multi["dir"])
    assert len(replicas) == 6 and {t.status for t in replicas} == {"TERMINATED"}
    final = read_final(multi["dir"])
    roles = {}
    for r in replicas:
        entry = r.replicate
        roles.setdefault(entry["role"], []).append(entry["seed"])
        source = trials[entry["source"]]
        mine = yaml.safe_load(open(os.path.join(multi["dir"], "final", "replicates",
                                                f"trial_{r.trial_id}", "config.yaml")))
        theirs = yaml.safe_load(open(os.path.join(multi["dir"], f"trial_{source.trial_id}",
                                                  "config.yaml")))
        assert mine["train"].pop("seed") == entry["seed"] != theirs["train"].pop("seed")
        assert mine == theirs
        # Trained from scratch, for the whole budget (no ASHA among replicates).
        assert int(r.history[CRITIC_STEPS].min()) <= spec.eval_every_critic_steps
        assert r.last_critic_steps >= spec.max_critic_steps
    assert sorted(roles) == ["baseline", "best"]
    assert all(sorted(seeds) == [1, 2, 3] for seeds in roles.values())
    assert final["replicates"]["seeds"] == [1, 2, 3]
    assert {c["role"] for c in final["replicates"]["configs"]} == {"best", "baseline"}
    cmp = final["replicates"]["comparison"]["eval/ndb"]
    assert cmp["verdict"] in ("better", "worse", "not separated") and cmp["test"] == "Welch t-test"


def test_final_stage_evaluates_each_checkpoint_once_and_reports(multi):
    final = read_final(multi["dir"])
    ids = [r["trial_id"] for r in final["evaluations"]]  # top 2 and the baseline
    ids += [run["trial_id"] for c in final["replicates"]["configs"] for run in c["runs"]]
    log = [json.loads(x)["evaluated"] for x in open(os.path.join(multi["dir"], "final",
                                                                 "log.jsonl"))]
    assert sorted(log) == sorted(ids) and len(set(log)) == len(log) == 3 + 6
    assert any("baseline" in r["roles"] for r in final["evaluations"])
    info = json.load(open(os.path.join(multi["best"], "best.json")))
    assert info["picked_by"] == "final evaluation" and info["trial_id"] == final["winner"]
    board = pd.read_csv(os.path.join(multi["best"], "leaderboard.csv"))
    assert board["final/eval/ndb"].notna().sum() == len(final["evaluations"])
    assert {"final/eval/ndb lo", "final/eval/ndb hi", "final role"} <= set(board.columns)


def test_a_dashboard_reading_the_live_study_fails_nothing(multi):
    reader = multi["reader"]
    assert reader["reads"] > 0 and reader["errors"] == [], reader["errors"][:3]
    conn = sqlite3.connect(os.path.join(multi["dir"], "optuna.db"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
