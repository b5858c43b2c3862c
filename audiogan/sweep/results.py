"""Read a sweep directory (finished or partial, local or URI) without starting Ray.

Tune's `ExperimentAnalysis` gives the trials, their status, configs and kept checkpoints;
each trial's full history is read from its `result.json` (every report, JSON lines),
because `progress.csv` fixes its columns at the first report, which carries no
evaluation. An *evaluation* is a report with every objective: its vector
(`audiogan.sweep.objectives`) comes from that one report. A trial's answer is the
evaluation the sweep's selection rule picks among ALL its evaluations (scope "all": ASHA
may stop a trial right after a good rung), its front is the Pareto front of its
evaluations, and its best checkpoint is the rule's pick among the evaluations whose
checkpoint is still kept: a Tune checkpoint for single-worker trials, or the
`checkpoint_path` a Train run reported for multi-worker trials (Tune holds no checkpoint
for those). A multi-objective sweep deletes a trial's dominated checkpoints when the trial
ends (`audiogan.sweep.callbacks.ParetoCheckpoints`) while Tune's own records still list
them: only checkpoints that exist count.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Sequence

import pandas as pd
import pyarrow.fs as pafs

from audiogan import storage
from audiogan.errors import UserError
from audiogan.sweep.keys import (BUDGET_SPENT, CRITIC_STEPS, REPLICATE_KEY, TUNER_STATE,
                                 split_trial_config)
from audiogan.sweep.objectives import (Objective, Selection, pareto_front, rank, select,
                                       vector_of)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Evaluation:
    critic_steps: int
    vector: dict[str, float]
    report: dict[str, Any]            # the whole report it came from
    checkpoint: str | None = None     # its kept checkpoint (path or URI), if any
    checkpoint_fs: Any = None


@dataclasses.dataclass
class TrialSummary:
    trial_id: str
    status: str
    params: dict[str, Any]
    constants: dict[str, Any]
    history: pd.DataFrame              # every report: critic steps, the objectives, ...
    objectives: tuple[Objective, ...]
    evaluations: list[Evaluation]
    chosen: Evaluation | None          # the selection rule's pick among all evaluations
    front: list[Evaluation]            # the Pareto front of its evaluations
    kept: Evaluation | None            # the rule's pick among evaluations with a checkpoint
    last_critic_steps: int
    error: bool = False

    @property
    def best_value(self) -> float | None:
        return None if self.chosen is None else self.chosen.vector[self.objectives[0].metric]

    @property
    def best_critic_steps(self) -> int | None:
        return None if self.chosen is None else self.chosen.critic_steps

    @property
    def vector(self) -> dict[str, float] | None:
        return None if self.chosen is None else self.chosen.vector

    @property
    def checkpoint(self) -> str | None:
        return None if self.kept is None else self.kept.checkpoint

    @property
    def checkpoint_fs(self) -> Any:
        return None if self.kept is None else self.kept.checkpoint_fs

    @property
    def replicate(self) -> dict[str, Any] | None:
        """{role, source, seed, params} for a replicate trial of the final stage."""
        return self.constants.get(REPLICATE_KEY)


def as_objectives(objectives: str | Sequence[Objective], mode: str = "") -> tuple[Objective, ...]:
    if isinstance(objectives, str):
        from audiogan.metrics.registry import check_objective

        return (Objective(objectives, mode or check_objective(objectives)),)
    return tuple(objectives)


def _read_history(fs: pafs.FileSystem, trial_path: str) -> pd.DataFrame:
    path = f"{trial_path.rstrip('/')}/result.json"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return pd.DataFrame()
    with fs.open_input_stream(path) as f:
        text = f.read().decode()
    lines = [line for line in text.splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i < len(lines) - 1:  # a live trial's last line may be half-written; any
                # other bad line is damage: said, skipped, the rest of the history kept
                log.warning("%s: line %d is not JSON; skipped", path, i + 1)
    return pd.DataFrame(rows)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not (isinstance(v, float) and v != v)}


def load_trials(sweep_dir: str, objectives: str | Sequence[Objective], mode: str = "",
                selection: Selection = Selection()) -> list[TrialSummary]:
    from ray.tune import ExperimentAnalysis

    from audiogan.cluster.compat import experiment_filesystem

    objectives = as_objectives(objectives, mode)
    if not storage.exists(storage.join(sweep_dir, TUNER_STATE)):
        raise UserError(f"'{sweep_dir}' is not a sweep directory (no {TUNER_STATE})")
    ray_path, ray_fs = storage.for_ray(sweep_dir)
    try:
        ea = ExperimentAnalysis(ray_path, storage_filesystem=ray_fs)
    except Exception as exc:  # Tune raises several types for a half-written experiment
        raise UserError(f"cannot read sweep '{sweep_dir}': {exc}") from exc
    out = []
    for trial in ea.trials:
        constants, params = split_trial_config(trial.config)
        trial_fs, trial_path = storage.resolve(trial.path) if storage.is_uri(trial.path) else (
            experiment_filesystem(ea), trial.path)
        hist = _read_history(trial_fs, trial_path)
        evaluations = _evaluations(hist, objectives, _kept_checkpoints(trial, hist, trial_fs))
        vectors = [e.vector for e in evaluations]
        pick = select(vectors, objectives, selection)
        with_ckpt = [e for e in evaluations if e.checkpoint]
        kept = select([e.vector for e in with_ckpt], objectives, selection)
        last = int(hist[CRITIC_STEPS].max()) if CRITIC_STEPS in hist else 0
        out.append(TrialSummary(
            trial.trial_id, trial.status, params, constants, hist, objectives, evaluations,
            chosen=None if pick is None else evaluations[pick],
            front=[evaluations[i] for i in pareto_front(vectors, objectives)],
            kept=None if kept is None else with_ckpt[kept], last_critic_steps=last,
            error=trial.status == "ERROR"))
    return out


def _evaluations(hist: pd.DataFrame, objectives: tuple[Objective, ...],
                 checkpoints: dict[int, tuple[str, Any]]) -> list[Evaluation]:
    by_steps: dict[int, Evaluation] = {}
    for row in hist.to_dict("records") if len(hist) else []:
        vector = vector_of(row, objectives)
        if vector is None:
            continue
        steps = int(row.get(CRITIC_STEPS, 0) or 0)
        path, fs = checkpoints.get(steps, (None, None))
        # A trial restored after a failure reports some steps again: the later report wins.
        by_steps[steps] = Evaluation(steps, vector, _clean(row), path, fs)
    return [by_steps[s] for s in sorted(by_steps)]


def _kept_checkpoints(trial: Any, hist: pd.DataFrame, trial_fs: pafs.FileSystem
                      ) -> dict[int, tuple[str, Any]]:
    """critic steps -> (path, filesystem) of every checkpoint of the trial that exists.
    A multi-worker trial's Train run reports `checkpoint_path` inside the sweep's own
    filesystem ("bucket/prefix/train/..." under an object-store sweep), not as a URI."""
    found: dict[int, tuple[str, Any]] = {}
    manager = trial.run_metadata.checkpoint_manager
    results = list(manager.best_checkpoint_results)
    if manager.latest_checkpoint_result is not None:
        results.append(manager.latest_checkpoint_result)
    for res in results:
        steps = res.metrics.get(CRITIC_STEPS)
        if steps is not None:
            found[int(steps)] = (res.checkpoint.path, res.checkpoint.filesystem)
    if "checkpoint_path" in hist and CRITIC_STEPS in hist:
        for _, row in hist.iterrows():
            path = row["checkpoint_path"]
            if isinstance(path, str) and path:
                fs, p = storage.resolve(path) if storage.is_uri(path) else (trial_fs, path)
                found[int(row[CRITIC_STEPS])] = (p, fs)
    return {s: (p, fs) for s, (p, fs) in found.items()
            if fs.get_file_info(p).type != pafs.FileType.NotFound}


def stopped_early(t: TrialSummary, max_critic_steps: int) -> bool:
    """Stopped by the scheduler before max_critic_steps (not by its train.time_budget_s)."""
    budget = BUDGET_SPENT in t.history and bool((t.history[BUDGET_SPENT] == 1).any())
    return t.status == "TERMINATED" and 0 < t.last_critic_steps < max_critic_steps \
        and not budget


def sweep_front(trials: Sequence[TrialSummary]) -> list[tuple[TrialSummary, Evaluation]]:
    """The sweep's Pareto front over every evaluation of every trial."""
    pairs = [(t, e) for t in trials for e in t.evaluations]
    if not pairs:
        return []
    objectives = trials[0].objectives
    return [pairs[i] for i in pareto_front([e.vector for _, e in pairs], objectives)]


def leaderboard(sweep_dir: str, objectives: str | Sequence[Objective], mode: str = "",
                trials: list[TrialSummary] | None = None,
                selection: Selection = Selection()) -> pd.DataFrame:
    """One row per trial, best first by the selection rule. One objective: its column is
    `best <metric>`; several: one column per objective (the chosen evaluation's values)
    and how many of the trial's evaluations are on the sweep's Pareto front."""
    objectives = as_objectives(objectives, mode)
    trials = trials if trials is not None else load_trials(sweep_dir, objectives,
                                                           selection=selection)
    multi = len(objectives) > 1
    on_front: dict[str, int] = {}
    for t, _ in sweep_front(trials) if multi else []:
        on_front[t.trial_id] = on_front.get(t.trial_id, 0) + 1
    rows = []
    for t in rank_trials(trials, selection):
        max_cs = int(t.constants.get("spec", {}).get("max_critic_steps", 0))
        values = ({o.metric: (t.vector or {}).get(o.metric) for o in objectives} if multi
                  else {f"best {objectives[0].metric}": t.best_value})
        extra = {"pareto_evaluations": on_front.get(t.trial_id, 0)} if multi else {}
        rows.append({"trial_id": t.trial_id, "status": t.status, **t.params, **values,
                     "at_critic_steps": t.best_critic_steps, "critic_steps": t.last_critic_steps,
                     "stopped_early": stopped_early(t, max_cs),
                     "evaluations": len(t.evaluations), **extra,
                     "checkpoint": _as_uri(sweep_dir, t.checkpoint)})
    board = pd.DataFrame(rows)
    if not board.empty:
        board.insert(0, "rank", range(1, len(board) + 1))
    return board


def _as_uri(sweep_dir: str, path: str | None) -> str:
    """A checkpoint as the user can open it: Tune gives paths inside the sweep's filesystem
    ("bucket/prefix/trial_x/checkpoint_000001"), which on object storage name nothing by
    themselves; under a URI sweep directory they become URIs with its options."""
    if not path or not storage.is_uri(sweep_dir):
        return path or ""
    _, inside = storage.resolve(sweep_dir)
    inside = inside.rstrip("/")
    if path.startswith(inside + "/"):
        return storage.join(sweep_dir, path[len(inside) + 1:])
    return path


def rank_trials(trials: Sequence[TrialSummary], selection: Selection = Selection()
                ) -> list[TrialSummary]:
    """Trials best first by the selection rule over their chosen vectors; unscored last."""
    if not trials:
        return []
    order = rank([t.vector for t in trials], trials[0].objectives, selection)
    return [trials[i] for i in order]


def write_leaderboard(board: pd.DataFrame, path: str) -> None:
    storage.write_bytes_atomic(path, board.to_csv(index=False).encode())
