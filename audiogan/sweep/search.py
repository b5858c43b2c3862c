"""The sweep's search: the Optuna searcher over a define-by-run space, and ASHA with a baseline.

`AudioganOptunaSearch` is Ray's `OptunaSearch` with what a persistent study needs: the
search space is `audiogan.sweep.space.SearchSpace` (define-by-run, so conditional
parameters exist only under their parent's value); results without every objective
(training-only reports) are skipped; with one objective, intermediate values are reported
to Optuna keyed by critic steps (Optuna's pruning calls refuse multi-objective studies, so
a multi-objective sweep reports none and ASHA in Tune stops trials on the first
objective); the value told to Optuna is the vector of ONE evaluation of the trial, the one
the sweep's selection rule picks among all its evaluations (the same choice `audiogan
best` makes); the Tune trial id is stored on the Optuna trial; the baseline is enqueued
only into a fresh study (a restore must not enqueue it again); and after a restore any
study trial left RUNNING by a killed driver, unknown to the restored searcher, is marked
FAIL so the study and Tune agree.

The sampler (`sampler:` in the spec) is Optuna's TPE (multi-objective capable, the
default), NSGA-II or random search, seeded with the spec's `optuna_seed` (by default a hash
of the sweep name: `spec.derived_seed`).

Ray/Optuna internals are reached only through `audiogan.cluster.compat`'s adapters.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.tune.schedulers import TrialScheduler

from audiogan.cluster.compat import (ASHAAdapter, OptunaSearchAdapter, optuna_study_storage,
                                     optuna_trial_storage_id)
from audiogan.sweep.keys import CRITIC_STEPS, split_trial_config
from audiogan.sweep.objectives import Objective, Selection, select, vector_of
from audiogan.sweep.space import SearchSpace, same_point
from audiogan.sweep.spec import SweepSpec, baseline_point
from audiogan.sweep.study import open_storage

log = logging.getLogger(__name__)


def build_sampler(spec: SweepSpec, seed: int) -> Any:
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        # Optuna's default population (50) would make a 16-trial sweep pure random search.
        population = min(50, max(4, spec.num_samples // 4))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def build_searcher(spec: SweepSpec, url: str, study_name: str, seed: int,
                   sweep_dir: str = "") -> "AudioganOptunaSearch":
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    points = [baseline_point(spec)] if spec.baseline else None
    objectives = spec.objective_list
    multi = len(objectives) > 1
    return AudioganOptunaSearch(
        space=SearchSpace(spec.search),
        metric=[o.metric for o in objectives] if multi else spec.metric,
        mode=[o.mode for o in objectives] if multi else spec.mode,
        points_to_evaluate=points, study_name=study_name, storage=open_storage(url),
        sampler=build_sampler(spec, seed), objectives=objectives, selection=spec.selection,
        study_location=(spec.optuna_storage, sweep_dir))


def build_scheduler(spec: SweepSpec) -> "BaselineASHA":
    # ASHA ranks by one metric: the first objective.
    return BaselineASHA(time_attr=CRITIC_STEPS, metric=spec.metric, mode=spec.mode,
                        max_t=spec.max_critic_steps, grace_period=spec.grace_critic_steps,
                        reduction_factor=spec.reduction_factor,
                        baseline=baseline_point(spec) if spec.baseline else None)


class BaselineASHA(ASHAAdapter):
    """ASHA that never stops the baseline trial early: the paper's recipe gets the whole
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

    def __init__(self, *args: Any, objectives: tuple[Objective, ...] = (),
                 selection: Selection = Selection(), study_location: tuple[str, str] = ("", ""),
                 **kwargs: Any) -> None:
        self.objectives, self.selection = tuple(objectives), selection
        # (the spec's database URL, the sweep directory): where the study lives is derived
        # from these on whichever node runs the driver (`study.locate`), never stored.
        self.study_location = study_location
        self.evaluations: dict[str, dict[int, dict[str, float]]] = {}  # trial -> steps -> vector
        super().__init__(*args, **kwargs)

    def prepare_study(self) -> None:
        # Tune sets the study up again on restore, before restoring the searcher state: a
        # study that already has trials must not get the baseline enqueued a second time.
        if self.study_storage is not None and _study_has_trials(self.study_storage,
                                                                self.study_name):
            self.points_to_evaluate = []

    def current_storage(self, pickled_url: str | None) -> Any:
        from audiogan.sweep.study import locate

        # Pickled before study_location existed: the pickled URL is all there is.
        database_url, sweep_dir = getattr(self, "study_location", ("", ""))
        if not sweep_dir:
            return super().current_storage(pickled_url)
        return open_storage(locate(database_url, sweep_dir, self.study_name)[0])

    def suggest(self, trial_id: str) -> dict | None:
        fresh = trial_id not in self.optuna_trials
        params = super().suggest(trial_id)
        if fresh and trial_id in self.optuna_trials:
            self.optuna_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
            self.name_objectives()
        return params

    def name_objectives(self) -> None:
        """Store the objectives' names in the study: optuna-dashboard labels its axes with
        them ("eval/ndb") instead of "Objective 0"."""
        import warnings

        import optuna

        study = self.study
        names = [o.metric for o in self.objectives]
        if study is None or study.metric_names is not None or len(names) != len(study.directions):
            return
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)

    def record_evaluation(self, trial_id: str, result: dict | None) -> dict[str, float] | None:
        """Keep the evaluation vector of a result (once per critic-step count)."""
        vector = vector_of(result or {}, self.objectives)
        if vector is None:
            return None
        step = int(result.get(CRITIC_STEPS, result.get("training_iteration", 0)))
        seen = self.evaluations.setdefault(trial_id, {})
        if step in seen:
            return None
        seen[step] = vector
        return vector

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.completed_trial_ids or trial_id not in self.optuna_trials:
            return  # ended, or unknown to a restored study (compat's `reopen` warned)
        vector = self.record_evaluation(trial_id, result)
        if vector is None or len(self.objectives) > 1:
            return  # Optuna's report()/pruning refuse multi-objective studies
        step = int(result.get(CRITIC_STEPS, result.get("training_iteration", 0)))
        try:
            self.optuna_trials[trial_id].report(vector[self.objectives[0].metric], step)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            log.debug("optuna report skipped: %s", exc)  # e.g. a repeated step

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id not in self.optuna_trials or self.already_told(trial_id):
            return
        # Tune hands the result that made ASHA stop a trial to this method only.
        self.record_evaluation(trial_id, result)
        vectors = list(self.evaluations.get(trial_id, {}).values())
        pick = select(vectors, self.objectives, self.selection)
        # One evaluation's vector, never mixed; none at all: Optuna marks it PRUNED/FAIL.
        super().on_trial_complete(trial_id, result=None if pick is None else dict(vectors[pick]),
                                  error=error)

    def already_told(self, trial_id: str) -> bool:
        """The study already holds this trial's end: its driver told Optuna and copied the
        study, then died before Tune's own state recorded the end; the resumed trial ends
        again (from its final checkpoint) and must not be told twice."""
        trial = self.optuna_trials.get(trial_id)
        if trial is None or self.study_storage is None:
            return False
        frozen = self.study_storage.get_trial(optuna_trial_storage_id(trial))
        if not frozen.state.is_finished():
            return False
        log.info("optuna trial %d (%s) was already %s in the study: not told again",
                 frozen.number, trial_id, frozen.state.name)
        self.completed_trial_ids.add(trial_id)
        return True

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


def _study_has_trials(storage: Any, study_name: str) -> bool:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return False
    return len(storage.get_all_trials(study_id, deepcopy=False)) > 0
