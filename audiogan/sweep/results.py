"""Read a sweep directory (finished or partial, local or URI) without starting Ray.

Tune's `ExperimentAnalysis` gives the trials, their status, configs and kept checkpoints;
each trial's full history is read from its `result.json` (every report, JSON lines),
because `progress.csv` fixes its columns at the first report, which carries no
evaluation. A trial's objective is its best evaluation over all reports (scope "all"),
and its best checkpoint is the kept checkpoint with the best objective: a Tune checkpoint
for single-worker trials, or the `checkpoint_path` a Train run reported for multi-worker
trials (Tune holds no checkpoint for those).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from audiogan import storage
from audiogan.errors import UserError
from audiogan.sweep.keys import CRITIC_STEPS, TUNER_STATE, split_trial_config


@dataclasses.dataclass
class TrialSummary:
    trial_id: str
    status: str
    params: dict[str, Any]
    constants: dict[str, Any]
    history: pd.DataFrame          # every report: critic steps, the objective, ...
    best_value: float | None
    best_critic_steps: int | None
    last_critic_steps: int
    checkpoint: str | None         # path (or URI) of the best kept checkpoint
    checkpoint_fs: Any = None      # pyarrow filesystem of `checkpoint`
    error: bool = False


def _better(mode: str):
    return (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _read_history(fs: pafs.FileSystem, trial_path: str) -> pd.DataFrame:
    path = f"{trial_path.rstrip('/')}/result.json"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return pd.DataFrame()
    with fs.open_input_stream(path) as f:
        text = f.read().decode()
    rows = [json.loads(line) for line in io.StringIO(text) if line.strip()]
    return pd.DataFrame(rows)


def load_trials(sweep_dir: str, metric: str, mode: str) -> list[TrialSummary]:
    from ray.tune import ExperimentAnalysis

    from audiogan.cluster.compat import experiment_filesystem

    if not storage.exists(storage.join(sweep_dir, TUNER_STATE)):
        raise UserError(f"'{sweep_dir}' is not a sweep directory (no {TUNER_STATE})")
    fs, _ = storage.resolve(sweep_dir)
    try:
        ea = ExperimentAnalysis(sweep_dir, storage_filesystem=fs if storage.is_uri(sweep_dir) else None)
    except Exception as exc:  # Tune raises several types for a half-written experiment
        raise UserError(f"cannot read sweep '{sweep_dir}': {exc}") from exc
    better = _better(mode)
    out = []
    for trial in ea.trials:
        constants, params = split_trial_config(trial.config)
        trial_fs, trial_path = storage.resolve(trial.path) if storage.is_uri(trial.path) else (
            experiment_filesystem(ea), trial.path)
        hist = _read_history(trial_fs, trial_path)
        best_value = best_steps = None
        if metric in hist:
            evals = hist[hist[metric].map(_finite)]
            for _, row in evals.iterrows():
                if best_value is None or better(row[metric], best_value):
                    best_value, best_steps = float(row[metric]), int(row.get(CRITIC_STEPS, 0))
        last = int(hist[CRITIC_STEPS].max()) if CRITIC_STEPS in hist else 0
        ckpt, ckpt_fs = _best_checkpoint(trial, hist, metric, better)
        out.append(TrialSummary(trial.trial_id, trial.status, params, constants, hist,
                                best_value, best_steps, last, ckpt, ckpt_fs,
                                error=trial.status == "ERROR"))
    return out


def _best_checkpoint(trial: Any, hist: pd.DataFrame, metric: str, better) -> tuple[Any, Any]:
    candidates: list[tuple[float, str, Any]] = []
    for res in trial.run_metadata.checkpoint_manager.best_checkpoint_results:
        value = res.metrics.get(metric)
        if _finite(value):
            candidates.append((float(value), res.checkpoint.path, res.checkpoint.filesystem))
    if "checkpoint_path" in hist and metric in hist:
        for _, row in hist.iterrows():
            path = row["checkpoint_path"]
            if isinstance(path, str) and path and _finite(row[metric]):
                fs, p = storage.resolve(path)
                candidates.append((float(row[metric]), p, fs))
    best = None
    for cand in candidates:
        if best is None or better(cand[0], best[0]):
            best = cand
    return (best[1], best[2]) if best else (None, None)


def stopped_early(t: TrialSummary, max_critic_steps: int) -> bool:
    return t.status == "TERMINATED" and 0 < t.last_critic_steps < max_critic_steps


def leaderboard(sweep_dir: str, metric: str, mode: str,
                trials: list[TrialSummary] | None = None) -> pd.DataFrame:
    trials = trials if trials is not None else load_trials(sweep_dir, metric, mode)
    rows = []
    for t in trials:
        max_cs = int(t.constants.get("spec", {}).get("max_critic_steps", 0))
        rows.append({"trial_id": t.trial_id, "status": t.status, **t.params,
                     f"best {metric}": t.best_value, "at_critic_steps": t.best_critic_steps,
                     "critic_steps": t.last_critic_steps,
                     "stopped_early": stopped_early(t, max_cs),
                     "evaluations": int(t.history[metric].map(_finite).sum())
                     if metric in t.history else 0,
                     "checkpoint": t.checkpoint or ""})
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    key = f"best {metric}"
    board = board.sort_values(key, ascending=(mode == "min"), na_position="last",
                              kind="stable").reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def write_leaderboard(board: pd.DataFrame, path: str) -> None:
    storage.write_bytes_atomic(path, board.to_csv(index=False).encode())
