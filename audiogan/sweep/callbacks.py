"""Tune callbacks of a sweep (they run in the driver): keep each trial's Pareto front of
checkpoints, and copy the Optuna study into the sweep directory after every trial."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import pyarrow.fs as pafs
from ray.tune import Callback

from audiogan.sweep import study
from audiogan.sweep.objectives import Objective, pareto_front, vector_of

log = logging.getLogger(__name__)


def prune_dominated(trial: Any, objectives: Sequence[Objective]) -> list[str]:
    """Delete a trial's checkpoints that another of its checkpoints dominates (never the
    latest: Tune resumes from it); returns the deleted paths. Tune ranks checkpoints by one
    attribute, so a multi-objective sweep keeps them all while the trial runs."""
    manager = trial.run_metadata.checkpoint_manager
    results = list(manager.best_checkpoint_results)
    latest = manager.latest_checkpoint_result
    keep = set(pareto_front([vector_of(r.metrics, objectives) for r in results], objectives))
    deleted = []
    for i, res in enumerate(results):
        ckpt = res.checkpoint
        if i in keep or (latest is not None and ckpt.path == latest.checkpoint.path):
            continue
        if ckpt.filesystem.get_file_info(ckpt.path).type != pafs.FileType.NotFound:
            ckpt.filesystem.delete_dir(ckpt.path)
            deleted.append(ckpt.path)
    if deleted:
        log.info("trial %s: deleted %d dominated checkpoint(s), kept %d on its Pareto front",
                 trial.trial_id, len(deleted), len(keep))
    return deleted


class ParetoCheckpoints(Callback):
    def __init__(self, objectives: Sequence[Objective]) -> None:
        self.objectives = tuple(objectives)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        prune_dominated(trial, self.objectives)


class StudyBackup(Callback):
    """A consistent copy of the live SQLite study (`study.backup`) when a trial starts (its
    Optuna trial was just asked: a resume must find it) and ends, and at the end, so a new
    driver node can resume from the sweep directory. The study is found through
    `study.locate` at each copy: this callback is pickled with the Tuner, and a resumed
    sweep's driver may keep its study somewhere else."""

    def __init__(self, location: tuple[str, str, str]) -> None:
        self.location = location  # (the spec's database URL, the sweep directory, name)

    def copy_now(self) -> None:
        url, target = study.locate(*self.location)
        if target is None:
            return
        try:
            study.backup(url, target)
        except OSError as exc:  # a failed copy must not fail the sweep; the next one retries
            log.warning("could not copy the Optuna study to %s: %s", target, exc)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.copy_now()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.copy_now()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.copy_now()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.copy_now()
