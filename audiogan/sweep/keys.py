"""The sweep's file names, trial-config keys and constants: no Ray import, so readers of a
finished sweep (`audiogan best`, reports) load nothing heavy."""

from __future__ import annotations

from typing import Any

DEFAULT_STORAGE = "sweep_runs"
SPEC_FILE = "sweep.yaml"          # the resolved spec, written before anything starts
STUDY_FILE = "optuna.db"          # the Optuna study (SQLite) unless a database URL is given
TUNER_STATE = "tuner.pkl"         # Tune's experiment state: "a sweep lives here"
LEADERBOARD = "leaderboard.csv"
SEARCH_DONE = "search_done.json"  # written once every search trial finished
FINAL_DIR = "final"               # the final stage: evaluations, replicates, final.json
FINAL_FILE = "final.json"         # in FINAL_DIR, written last
REPLICATES_DIR = "replicates"     # in FINAL_DIR: the replicates' Tune experiment
TRIAL_CONFIG = "config.yaml"      # in each trial directory: its resolved config

SWEEP_KEY = "sweep"  # the trial config's constant part; every other key is a searched value
REPLICATE_KEY = "replicate"  # a replicate trial's {role, source, seed, params}
CRITIC_STEPS = "progress/critic_steps"  # ASHA's time attribute: the compute unit
# 1 in the last report of a run that train.time_budget_s ended (not a scheduler's stop)
BUDGET_SPENT = "progress/time_budget_spent"
LOOP = "audiogan.train.loop:train_loop"
SESSION = "audiogan.cluster.session:TuneSession"
FINAL_EVAL = "audiogan.sweep.final_eval:evaluate_final"


def split_trial_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sweep constants, sampled values) of a Tune trial config. A replicate's values are its
    source trial's plus `train.seed`; its constants carry the replicate entry."""
    if REPLICATE_KEY in config:
        entry = config[REPLICATE_KEY]
        return ({**config[SWEEP_KEY], REPLICATE_KEY: entry},
                {**entry["params"], "train.seed": entry["seed"]})
    params = {k: v for k, v in config.items() if k != SWEEP_KEY}
    return config[SWEEP_KEY], params


def trial_dirname(trial_id: str) -> str:
    return f"trial_{trial_id}"
