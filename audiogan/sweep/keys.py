"""The sweep's file names, trial-config keys and constants: no Ray import, so readers of a
finished sweep (`audiogan best`, reports) load nothing heavy."""

from __future__ import annotations

from typing import Any

DEFAULT_STORAGE = "sweep_runs"
SPEC_FILE = "sweep.yaml"          # the resolved spec, written before anything starts
STUDY_FILE = "optuna.db"          # the Optuna study (SQLite) unless a database URL is given
TUNER_STATE = "tuner.pkl"         # Tune's experiment state: "a sweep lives here"
LEADERBOARD = "leaderboard.csv"

SWEEP_KEY = "sweep"  # the trial config's constant part; every other key is a searched value
CRITIC_STEPS = "progress/critic_steps"  # ASHA's time attribute: the compute unit
LOOP = "audiogan.train.loop:train_loop"
SESSION = "audiogan.cluster.session:TuneSession"


def split_trial_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sweep constants, sampled values) of a Tune trial config."""
    params = {k: v for k, v in config.items() if k != SWEEP_KEY}
    return config[SWEEP_KEY], params
