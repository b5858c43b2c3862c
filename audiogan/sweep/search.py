"""The sweep's search: Tune's search space, the Optuna searcher, and ASHA with a baseline.

`AudioganOptunaSearch` is Ray's `OptunaSearch` with what a persistent study needs:
results without the objective (training-only reports) are skipped, intermediate values
are keyed by critic steps, the value told to Optuna is the trial's best evaluation (the
same "all evaluations" scope `audiogan best` uses), the Tune trial id is stored on the
Optuna trial, the baseline is enqueued only into a fresh study (a restore must not enqueue
it again), and after a restore any study trial left RUNNING by a killed driver, unknown to
the restored searcher, is marked FAIL so the study and Tune agree.

Ray/Optuna internals are reached only through `audiogan.cluster.compat`'s adapters.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.tune.schedulers import TrialScheduler

from audiogan.cluster.compat import (ASHAAdapter, OptunaSearchAdapter, optuna_study_storage,
                                     optuna_trial_storage_id)
from audiogan.sweep.keys import CRITIC_STEPS, split_trial_config
from audiogan.sweep.spec import SweepSpec, baseline_point, same_point

log = logging.getLogger(__name__)


def search_space(spec: SweepSpec) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {}
    for key, d in spec.search.items():
        kind = d["type"]
        if kind == "loguniform":
            space[key] = tune.loguniform(d["low"], d["high"])
        elif kind == "uniform":
            space[key] = tune.uniform(d["low"], d["high"])
        elif kind == "int":
            space[key] = tune.randint(d["low"], d["high"] + 1)  # Tune's upper bound is exclusive
        else:
            space[key] = tune.choice(d["values"])
    return space


def build_searcher(spec: SweepSpec, url: str, study_name: str) -> "AudioganOptunaSearch":
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = optuna.storages.RDBStorage(url)
    points = [baseline_point(spec)] if spec.baseline else None
    return AudioganOptunaSearch(metric=spec.metric, mode=spec.mode, points_to_evaluate=points,
                                study_name=study_name, storage=rdb, seed=spec.optuna_seed)


def build_scheduler(spec: SweepSpec) -> "BaselineASHA":
    return BaselineASHA(time_attr=CRITIC_STEPS, metric=spec.metric, mode=spec.mode,
                        max_t=spec.max_critic_steps, grace_period=spec.grace_critic_steps,
                        reduction_factor=spec.reduction_factor,
                        baseline=baseline_point(spec) if spec.baseline else None)


class BaselineASHA(ASHAAdapter):
    """ASHA that never stops the baseline trial early: WaveGAN's defaults get the whole
    critic-step budget, so the sweep compares its best trial against them at equal compute.
    Every other trial is stopped exactly as ASHA decides (the baseline's results still set
    the rungs' cut-offs)."""

    def __init__(self, *args: Any, baseline: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.baseline = baseline

    def is_baseline(self, config: dict[str, Any]) -> bool:
        return bool(self.baseline) and same_point(split_trial_config(config)[1], self.baseline)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == TrialScheduler.STOP and self.is_baseline(trial.config)
                and result.get(self.time_attr, 0) < self.max_t):
            self.uncount_stop()
            return TrialScheduler.CONTINUE
        return decision


class AudioganOptunaSearch(OptunaSearchAdapter):
    """OptunaSearch for a persistent (RDB) study shared with optuna-dashboard and `best`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.best_values: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def prepare_study(self) -> None:
        # Tune sets the study up again on restore, before restoring the searcher state: a
        # study that already has trials must not get the baseline enqueued a second time.
        if self.study_storage is not None and _study_has_trials(self.study_storage,
                                                                self.study_name):
            self.points_to_evaluate = []

    def suggest(self, trial_id: str) -> dict | None:
        fresh = trial_id not in self.optuna_trials
        params = super().suggest(trial_id)
        if fresh and trial_id in self.optuna_trials:
            self.optuna_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return params

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if value is None or trial_id in self.completed_trial_ids or not _finite(value):
            return
        better = max if self.mode == "max" else min
        old = self.best_values.get(trial_id)
        self.best_values[trial_id] = value if old is None else better(old, value)
        step = int(result.get(CRITIC_STEPS, result.get("training_iteration", 0)))
        try:
            self.optuna_trials[trial_id].report(value, step)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            # Optuna refuses a repeated step and multi-objective reports; not fatal.
            log.debug("optuna report skipped: %s", exc)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        best = self.best_values.get(trial_id)
        if best is not None:
            result = {**(result or {}), self.metric: best}
        elif result is not None and self.metric in result:
            result = {k: v for k, v in result.items() if k != self.metric}
        super().on_trial_complete(trial_id, result=result, error=error)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.fail_orphans()

    def fail_orphans(self) -> None:
        """Study trials RUNNING but unknown to this (restored) searcher were asked by a
        driver that died before saving its state: Tune will never finish them."""
        from optuna.trial import TrialState

        study = self.study
        if study is None:
            return
        known = {optuna_trial_storage_id(t) for t in self.optuna_trials.values()}
        storage = optuna_study_storage(study)
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial_id = optuna_trial_storage_id(frozen)
            if trial_id not in known:
                storage.set_trial_state_values(trial_id, TrialState.FAIL)
                log.info("optuna trial %d was orphaned by an interrupted driver: marked FAIL",
                         frozen.number)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _study_has_trials(storage: Any, study_name: str) -> bool:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return len(storage.get_all_trials(study_id, deepcopy=False)) > 0
