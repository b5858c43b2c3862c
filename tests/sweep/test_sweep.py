"""Sweeps: one real smoke sweep (interrupted by SIGINT, resumed) feeds most assertions."""

from __future__ import annotations

import json
import os

import optuna
import pandas as pd
import pytest
import yaml

from audiogan.sweep import best as best_mod
from audiogan.cli import main
from audiogan.sweep.results import load_trials, stopped_early
from audiogan.sweep.spec import load_spec, parse_spec
from tests.sweep.conftest import NAME, SMOKE


def test_resume_after_sigint_completes(smoke_sweep):
    assert smoke_sweep["interrupted"], "the first run finished before it could be interrupted"
    assert smoke_sweep["rc1"] == 130, smoke_sweep["out1"][-2000:]
    assert "--resume" in smoke_sweep["out1"]
    assert smoke_sweep["completed_before_resume"] >= 1
    trials = load_trials(smoke_sweep["dir"], "eval/ndb", "min")
    assert {t.status for t in trials} == {"TERMINATED"}


def test_runs_trials_asked_with_distinct_params_and_leaderboard(smoke_sweep):
    spec = load_spec(SMOKE)
    trials = load_trials(smoke_sweep["dir"], "eval/ndb", "min")
    assert len(trials) == spec.num_samples
    params = {tuple(sorted(t.params.items())) for t in trials}
    assert len(params) == spec.num_samples
    assert set(trials[0].params) == set(spec.search)
    board = pd.read_csv(os.path.join(smoke_sweep["dir"], "leaderboard.csv"))
    assert len(board) == spec.num_samples and list(board["rank"]) == list(range(1, len(board) + 1))
    assert board["best eval/ndb"].notna().all()
    # Equal critic-step budget: every trial reached max_critic_steps (n_critic rounding aside).
    for t in trials:
        assert spec.max_critic_steps <= t.last_critic_steps < spec.max_critic_steps + 10
    # The sweep directory describes itself; trials log TensorBoard events.
    resolved = yaml.safe_load(open(os.path.join(smoke_sweep["dir"], "sweep.yaml")))
    assert resolved["base"] == spec.base and resolved["resolved"]["data"]
    for t in trials:
        tdir = os.path.join(smoke_sweep["dir"], f"trial_{t.trial_id}")
        assert any(f.startswith("events.out.tfevents") for f in os.listdir(tdir))


def test_optuna_study_holds_the_sweep_trials_once(smoke_sweep):
    spec = load_spec(SMOKE)
    study = optuna.load_study(study_name=NAME,
                              storage=f"sqlite:///{os.path.join(smoke_sweep['dir'], 'optuna.db')}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    tune_ids = {t.trial_id for t in load_trials(smoke_sweep["dir"], "eval/ndb", "min")}
    assert {t.user_attrs["tune_trial_id"] for t in done} == tune_ids
    assert len(done) == spec.num_samples  # nothing lost, nothing duplicated by the restore
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    # The baseline (WaveGAN's defaults) was enqueued once, as the first trial.
    assert study.trials[0].params == {"optim.lr_g": 1e-4, "optim.lr_d": 1e-4,
                                      "loss.n_critic": 5, "loss.gp_weight": 10.0}
    assert sum(t.params == study.trials[0].params for t in study.trials) == 1


def test_best_copies_a_loadable_checkpoint_and_plots(smoke_sweep, tmp_path):
    out = str(tmp_path / "best")
    assert main(["best", smoke_sweep["dir"], "--out", out, "--page-seeds", "0"]) == 0
    info = json.load(open(os.path.join(out, "best.json")))
    trials = load_trials(smoke_sweep["dir"], "eval/ndb", "min")
    assert info["value"] == min(t.best_value for t in trials)
    # The smoke spec enqueues WaveGAN's defaults as the baseline trial; best.json reports it
    # beside the best, and counts what ASHA stopped, from the same trial records.
    base = info["baseline"]
    assert base["params"] == {"optim.lr_g": 1e-4, "optim.lr_d": 1e-4, "loss.n_critic": 5,
                              "loss.gp_weight": 10.0}
    by_id = {t.trial_id: t for t in trials}
    assert base["value"] == by_id[base["trial_id"]].best_value
    assert base["is_best"] == (base["trial_id"] == info["trial_id"])
    board = pd.read_csv(os.path.join(out, "leaderboard.csv"))
    assert info["stopped_early_by_asha"] == int(board["stopped_early"].sum())
    assert sum(info["trials_by_status"].values()) == len(trials) == len(board)
    for name in ("leaderboard.csv", "best_config.yaml", "plots/objective_over_critic_steps.png",
                 "plots/objective_vs_hyperparameters.png", "plots/param_importances.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    cfg = yaml.safe_load(open(os.path.join(out, "best_config.yaml")))
    for key, value in info["params"].items():
        section, k = key.split(".")
        assert cfg[section][k] == pytest.approx(value)
    from audiogan.train.checkpoint import load_generator

    generator, loaded_cfg, meta = load_generator(os.path.join(out, "checkpoint"))
    assert loaded_cfg.optim.lr_g == pytest.approx(info["params"]["optim.lr_g"])
    try:
        import audiogan.sample  # noqa: F401
    except ImportError:
        return
    assert main(["sample", os.path.join(out, "checkpoint"), "--out", str(tmp_path / "s"),
                 "--seeds", "0-1"]) == 0


def test_unknown_key_and_existing_sweep_are_one_line_errors(smoke_sweep, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(SMOKE).read() + "num_sample: 3\n")
    assert main(["sweep", str(bad), "--data", "x", "--dry-run"]) == 2
    assert "unknown key 'num_sample'" in capsys.readouterr().err
    assert main(["sweep", SMOKE, "--data", smoke_sweep["dir"], "--storage",
                 smoke_sweep["root"], "--name", NAME]) == 2
    assert "--resume" in capsys.readouterr().err


def _fake_spec(**extra):
    raw = yaml.safe_load(open(SMOKE))
    raw.update({"num_samples": 6, "baseline": False, "optuna_seed": 3, **extra})
    return parse_spec(raw)


def test_asha_stops_early_and_best_uses_all_evaluations(ray_cluster, notes_data, tmp_path):
    from audiogan.sweep import run_sweep

    # One trial at a time: ASHA's decisions then follow from the sampled points alone, not
    # from which of two concurrent trials reaches a rung first (a loaded machine reorders them).
    spec = _fake_spec(max_concurrent_trials=1)
    sweep_dir = str(tmp_path / "fake")
    assert run_sweep(spec, notes_data, sweep_dir, "fake", loop="tests.sweep.fake_loop:train_loop") == 0
    trials = load_trials(sweep_dir, "eval/ndb", "min")
    assert len(trials) == 6
    assert any(stopped_early(t, spec.max_critic_steps) for t in trials)
    # Every trial is best at its first evaluation: scope "all" must find that, not the last.
    for t in trials:
        assert t.best_critic_steps == t.history["progress/critic_steps"].min()
    chosen = best_mod.pick_best(trials)
    last = {t.trial_id: t.history["eval/ndb"].dropna().iloc[-1] for t in trials}
    assert chosen.best_value == min(t.best_value for t in trials)
    assert chosen.best_value < min(last.values())
    assert chosen.checkpoint and os.path.exists(os.path.join(chosen.checkpoint, "state.json"))
    state = json.load(open(os.path.join(chosen.checkpoint, "state.json")))
    assert state["step"] * chosen.params["loss.n_critic"] == chosen.best_critic_steps


def test_final_stage_scores_real_checkpoints_with_intervals(smoke_sweep, tmp_path, capsys):
    """`audiogan best SWEEP --final` on a copy of the finished smoke sweep (real
    checkpoints): unseen seeds, K bins, every metric with an interval, the floor at a
    matched count, and `best` answering with the final winner."""
    import shutil

    from audiogan.sweep.final import read_final

    sweep = str(tmp_path / NAME)
    shutil.copytree(smoke_sweep["dir"], sweep)
    # Without a final: section the defaults apply: K = 50 bins > 24 training windows.
    assert main(["best", sweep, "--final"]) == 2
    assert "fewer than metrics.ndb_k=50" in capsys.readouterr().err
    doc = yaml.safe_load(open(os.path.join(sweep, "sweep.yaml")))
    doc["final"] = {"top_k": 2, "n": 48, "ndb_k": 4, "bootstrap": 200, "replicates": 0}
    open(os.path.join(sweep, "sweep.yaml"), "w").write(yaml.safe_dump(doc))
    out = str(tmp_path / "best")
    assert main(["best", sweep, "--final", "--out", out, "--page-seeds", "0"]) == 0
    doc = read_final(sweep)
    roles = [role for r in doc["evaluations"] for role in r["roles"]]
    assert {"top-1", "top-2", "baseline"} <= set(roles)
    for record in doc["evaluations"]:
        assert (record["n"], record["ndb_k"], record["eval_seed"]) == (48, 4, 2_000_000)
        assert {"final/eval/ndb", "final/eval/note_overlap", "final/eval/nn_self"} <= \
            set(record["metrics"])
        for value in record["metrics"].values():
            assert value["lo"] <= value["hi"] and (value["n"], value["k"]) == (48, 4)
        matched = record["matched"]  # the test split has 8 windows: both scored at 8
        assert matched["n"] == 8 and matched["split"] == "test"
        assert matched["floor"]["final/floor/ndb"]["n"] == matched["model"]["final/eval/ndb"]["n"]
    info = json.load(open(os.path.join(out, "best.json")))
    assert info["trial_id"] == doc["winner"] and info["final"]["winner"] == doc["winner"]
    assert info["picked_by"] == "final evaluation"
