"""What runs inside one sweep trial, and the Optuna searcher that proposes it.

`run_trial` is the Tune function trainable. It resolves the trial's config from the sweep
constants plus the sampled values (`sweep_spec.trial_config`) and runs the one training
loop: directly in the trial process for a single worker (`train_loop(config,
session=TuneSession())`), or in a Ray Train `TorchTrainer` built inside the trial for
several workers, whose reports a `TuneReportCallback` relays to Tune (metrics plus
`checkpoint_path`; Tune itself gets no checkpoint then).

`AudioganOptunaSearch` is Ray's `OptunaSearch` with what a persistent study needs:
results without the objective (training-only reports) are skipped, intermediate values
are keyed by critic steps, the value told to Optuna is the trial's best evaluation (the
same "all evaluations" scope `audiogan best` uses), the Tune trial id is stored on the
Optuna trial, the baseline is enqueued only into a fresh study (a restore must not enqueue
it again), and after a restore any study trial left RUNNING by a killed driver, unknown to
the restored searcher, is marked FAIL so the study and Tune agree.
"""

from __future__ import annotations

import importlib
import logging
import math
from typing import Any, Callable

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from audiogan.sweep_spec import parse_spec, same_point, trial_config

log = logging.getLogger(__name__)

SWEEP_KEY = "sweep"  # the trial config's constant part; every other key is a searched value
CRITIC_STEPS = "progress/critic_steps"
LOOP = "audiogan.train.loop:train_loop"
SESSION = "audiogan.train.session:TuneSession"


def _load(ref: str) -> Callable[..., Any]:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def split_trial_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sweep constants, sampled values) of a Tune trial config."""
    params = {k: v for k, v in config.items() if k != SWEEP_KEY}
    return config[SWEEP_KEY], params


def run_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable (one trial)."""
    from ray import tune

    constants, params = split_trial_config(config)
    spec = parse_spec(constants["spec"])
    cfg = trial_config(spec, params)
    ctx = tune.get_context()
    if cfg.compute.workers == 1:
        loop = _load(constants.get("loop", LOOP))
        session = _load(constants.get("session", SESSION))()
        loop({"cfg": cfg.to_dict(), "data": constants["data"],
              "run_dir": ctx.get_trial_dir(), "resume_from": None}, session=session)
        return
    _run_multi_worker(cfg, constants, ctx.get_trial_id())


def _run_multi_worker(cfg: Any, constants: dict[str, Any], trial_id: str) -> None:
    # Train V2 inside Tune: the trial is a thin driver; the TorchTrainer gets its own
    # workers. Same run name on a restarted trial -> Train resumes from its own latest
    # checkpoint under `train_storage`.
    from ray.tune.integration.ray_train import TuneReportCallback

    from audiogan.train.run import build_trainer

    trainer = build_trainer(cfg, constants["data"], name=f"train-{trial_id}",
                            storage_path=constants["train_storage"], resume_from=None)
    run_config = trainer.run_config
    run_config.callbacks = [*(run_config.callbacks or []), TuneReportCallback()]
    trainer.fit()


class BaselineASHA(ASHAScheduler):
    """ASHA that never stops the baseline trial early: WaveGAN's defaults get the whole
    critic-step budget, so the sweep compares its best trial against them at equal compute.
    Every other trial is stopped exactly as ASHA decides (the baseline's results still set
    the rungs' cut-offs)."""

    def __init__(self, *args: Any, baseline: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._baseline = baseline

    def is_baseline(self, config: dict[str, Any]) -> bool:
        return bool(self._baseline) and same_point(split_trial_config(config)[1], self._baseline)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == TrialScheduler.STOP and self.is_baseline(trial.config)
                and result.get(self._time_attr, 0) < self._max_t):
            self._num_stopped -= 1
            return TrialScheduler.CONTINUE
        return decision


class AudioganOptunaSearch(OptunaSearch):
    """OptunaSearch for a persistent (RDB) study shared with optuna-dashboard and `best`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._best_values: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode: Any) -> None:
        # Tune calls this again on restore, before restoring the searcher state: a study
        # that already has trials must not get the baseline enqueued a second time.
        points = self._points_to_evaluate
        if self._storage is not None and _study_has_trials(self._storage, self._study_name):
            self._points_to_evaluate = []
        try:
            super()._setup_study(mode)
        finally:
            self._points_to_evaluate = points

    def suggest(self, trial_id: str) -> dict | None:
        fresh = trial_id not in self._ot_trials
        params = super().suggest(trial_id)
        if fresh and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return params

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if value is None or trial_id in self._completed_trials or not _finite(value):
            return
        better = max if self.mode == "max" else min
        old = self._best_values.get(trial_id)
        self._best_values[trial_id] = value if old is None else better(old, value)
        step = int(result.get(CRITIC_STEPS, result.get("training_iteration", 0)))
        try:
            self._ot_trials[trial_id].report(value, step)
        except Exception as exc:  # Optuna warns/raises on a repeated step; not fatal
            log.debug("optuna report skipped: %s", exc)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        best = self._best_values.get(trial_id)
        if best is not None:
            result = {**(result or {}), self.metric: best}
        elif result is not None and self.metric in result:
            result = {k: v for k, v in result.items() if k != self.metric}
        super().on_trial_complete(trial_id, result=result, error=error)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._fail_orphans()

    def _fail_orphans(self) -> None:
        """Study trials RUNNING but unknown to this (restored) searcher were asked by a
        driver that died before saving its state: Tune will never finish them."""
        from optuna.trial import TrialState

        if self._ot_study is None:
            return
        known = {t._trial_id for t in self._ot_trials.values()}
        storage = self._ot_study._storage
        for frozen in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen._trial_id not in known:
                storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
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
