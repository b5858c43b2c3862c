"""Every access to a private Ray or Optuna name, in one place, checked against the pins.

Ray 2.60 and Optuna 5.0 are pinned (pyproject.toml). A few things the product needs have
no public API there; each is reached here and only here, behind a small public function
or a thin adapter class, so the rest of the package never names a private attribute
(`tests/test_structure.py` enforces that). `check()` verifies the pinned versions and that
every private name used below still exists; `tests/cluster/test_compat.py` runs it, so an
upgrade fails one loud test instead of a sweep at 3 a.m.

What is private, and why it is used:
- Ray Train V2's "am I in a Train worker" / Tune's "am I in a Tune session" predicates
  (`cluster.session.detect_session`): the public `ray.train.get_context()` exists in both
  and does not tell them apart.
- The Train V2 context module's logger, silenced to WARNING (it logs every report at INFO).
- `DataParallelTrainer._register_sigint_handler`, wrapped so `audiogan train` can tell a
  Ctrl-C apart from a failed run (Ray's handler exits 0/1 with no word).
- `ExperimentAnalysis._fs`: the filesystem Tune resolved for a sweep directory.
- ASHA's `_time_attr`, `_max_t` and `_num_stopped` (the baseline trial is never stopped).
- OptunaSearch's study, its trial map and the `_setup_study` step (persistent RDB study:
  no second baseline on restore, orphaned trials failed, the Tune trial id recorded), and
  its pickled state (`save`/`restore`): stored without the storage, rebound on the node
  that resumes (a sweep survives losing its head).
- An Optuna `FrozenTrial`'s storage id (`_trial_id`) and a study's `_storage`.
"""

from __future__ import annotations

import logging
import signal
from typing import Any, Callable

from ray.tune.schedulers import ASHAScheduler

log = logging.getLogger(__name__)
from ray.tune.search.optuna import OptunaSearch

RAY_VERSION = "2.60.0"
OPTUNA_VERSION = "5.0.0"


# -- Ray Train / Tune sessions --------------------------------------------------------------
def in_tune_session() -> bool:
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    return bool(_in_tune_session())


def in_ray_train_worker() -> bool:
    from ray.train.v2._internal.util import _in_ray_train_worker

    return bool(_in_ray_train_worker())


def quiet_train_report_logs() -> None:
    """Ray logs every report at INFO ("Reporting training result N: ..."), which buries the
    loop's own progress lines: keep that module's warnings only."""
    from ray.train.v2._internal.execution import context as train_context

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def on_trainer_sigint(trainer: Any, callback: Callable[[], None]) -> None:
    """Call `callback` when Ctrl-C reaches `trainer.fit()`, then Ray's own handler (which
    aborts the run gracefully). `fit()` installs that handler itself, on the main thread."""
    register = trainer._register_sigint_handler

    def register_and_wrap(controller: Any) -> None:
        register(controller)
        ray_handler = signal.getsignal(signal.SIGINT)

        def handler(signum: int, frame: Any) -> None:
            callback()
            if callable(ray_handler):
                ray_handler(signum, frame)

        signal.signal(signal.SIGINT, handler)

    trainer._register_sigint_handler = register_and_wrap


def experiment_filesystem(analysis: Any) -> Any:
    """The pyarrow filesystem an `ExperimentAnalysis` resolved for its experiment path."""
    return analysis._fs


# -- Tune schedulers and searchers -----------------------------------------------------------
class ASHAAdapter(ASHAScheduler):
    """ASHA with public names for the private state a subclass needs."""

    @property
    def time_attr(self) -> str:
        return self._time_attr

    @property
    def max_t(self) -> float:
        return self._max_t

    def uncount_stop(self) -> None:
        """Undo ASHA's count of a STOP decision that the subclass turned into CONTINUE."""
        self._num_stopped -= 1


class OptunaSearchAdapter(OptunaSearch):
    """OptunaSearch with public names for its study and trials, and a hook that runs
    before the study is set up (Tune sets it up again on restore, before the searcher's
    own state is restored)."""

    def prepare_study(self) -> None:
        """Override: runs before the study is created or loaded."""

    def current_storage(self, pickled_url: str | None) -> Any:
        """The study's storage as this driver node reaches it; override to derive it (the
        URL the searcher was pickled with may be a lost node's path)."""
        from optuna.storages import RDBStorage

        return None if pickled_url is None else RDBStorage(pickled_url)

    # Tune pickles the searcher twice: inside the Tuner (tuner.pkl, `__getstate__`) and
    # as its state after every trial (`save`). Ray pickles OptunaSearch's whole __dict__,
    # the RDBStorage included, whose unpickling connects to the URL of the node that
    # pickled it: a dead head's SQLite path. The portable state keeps the sampler (its RNG)
    # and the Tune -> Optuna trial ids instead, and `reopen` binds them to the storage of
    # the node that unpickles it.
    def _portable_state(self) -> dict:
        state = self.__dict__.copy()
        study = state.pop("_ot_study", None)
        state["_portable_url"] = getattr(self._storage, "url", None)
        state["_storage"] = None
        state["_ot_study"] = None
        state["_portable_sampler"] = None if study is None else study.sampler
        state["_ot_trials"] = {}
        state["_portable_trial_ids"] = {tid: optuna_trial_storage_id(t)
                                        for tid, t in self._ot_trials.items()}
        return state

    def __getstate__(self) -> dict:
        return self._portable_state()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.reopen()

    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump(self._portable_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)  # updates __dict__ with the portable state
        self.reopen()

    def reopen(self) -> None:
        """Bind the unpickled searcher to this node's study storage (see `_portable_state`)."""
        import optuna

        sampler = self.__dict__.pop("_portable_sampler", None)
        ids = self.__dict__.pop("_portable_trial_ids", None)
        url = self.__dict__.pop("_portable_url", None)
        if ids is None:  # pickled by plain OptunaSearch: nothing to rebind
            return
        self._storage = self.current_storage(url)
        if self._storage is None:  # an in-memory study: nothing survives a pickle
            return
        self._ot_study, self._ot_trials = None, {}
        try:
            self._storage.get_study_id_from_name(self._study_name)
        except KeyError:  # no study there (a copy never made): start it as a fresh run does
            log.warning("Optuna study %s not found in its storage: starting it afresh",
                        self._study_name)
            self._setup_study(self._mode)
            return
        self._ot_study = optuna.load_study(
            study_name=self._study_name, storage=self._storage,
            sampler=sampler or self._sampler, pruner=optuna.pruners.NopPruner())
        for tid, storage_id in ids.items():
            try:
                self._ot_trials[tid] = optuna.Trial(self._ot_study, storage_id)
            except KeyError:  # asked after the study's last copy: the study never saw it
                log.warning("Tune trial %s has no Optuna trial in the restored study: its "
                            "result will not be told to Optuna", tid)

    def _setup_study(self, mode: Any) -> None:
        self.prepare_study()
        super()._setup_study(mode)

    @property
    def study(self) -> Any:
        return self._ot_study

    @property
    def study_storage(self) -> Any:
        return self._storage

    @property
    def study_name(self) -> str:
        return self._study_name

    @property
    def points_to_evaluate(self) -> list:
        return self._points_to_evaluate

    @points_to_evaluate.setter
    def points_to_evaluate(self, points: list) -> None:
        self._points_to_evaluate = points

    @property
    def optuna_trials(self) -> dict:
        """Tune trial id -> live `optuna.Trial`."""
        return self._ot_trials

    @property
    def completed_trial_ids(self) -> set:
        return self._completed_trials


def optuna_trial_storage_id(trial: Any) -> int:
    """The storage id of an Optuna trial (a `Trial` or a `FrozenTrial`)."""
    return trial._trial_id


def optuna_study_storage(study: Any) -> Any:
    return study._storage


# -- the version check -------------------------------------------------------------------------
def check() -> None:
    """Raise RuntimeError naming what changed when the pinned Ray/Optuna no longer match."""
    import inspect

    import optuna
    import ray
    from optuna.trial import FrozenTrial
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
    from ray.tune import ExperimentAnalysis

    problems = []
    if ray.__version__ != RAY_VERSION:
        problems.append(f"ray is {ray.__version__}, compat was written for {RAY_VERSION}")
    if optuna.__version__ != OPTUNA_VERSION:
        problems.append(f"optuna is {optuna.__version__}, compat was written for {OPTUNA_VERSION}")
    try:
        in_tune_session()
        in_ray_train_worker()
        quiet_train_report_logs()
    except (ImportError, AttributeError) as exc:
        problems.append(f"session predicates: {exc}")
    attrs = [
        (DataParallelTrainer, "_register_sigint_handler", "method"),
        (OptunaSearch, "_setup_study", "method"),
        (OptunaSearch, "restore", "method"),
    ]
    for cls, name, _ in attrs:
        if not callable(getattr(cls, name, None)):
            problems.append(f"{cls.__name__}.{name} is gone")
    sources = {
        "ExperimentAnalysis": (ExperimentAnalysis.__init__, ("self._fs",)),
        "ASHAScheduler": (ASHAScheduler.__init__, ("self._time_attr", "self._max_t",
                                                   "self._num_stopped")),
        "OptunaSearch": (OptunaSearch.__init__, (
            "self._ot_study", "self._storage", "self._study_name", "self._points_to_evaluate",
            "self._ot_trials", "self._completed_trials", "self._sampler")),
    }
    for owner, (fn, names) in sources.items():
        text = inspect.getsource(fn)
        problems += [f"{owner} no longer sets {n}" for n in names if f"{n} =" not in text]
    if "_trial_id" not in FrozenTrial.__init__.__code__.co_varnames and \
            "_trial_id" not in inspect.getsource(FrozenTrial.__init__):
        problems.append("optuna FrozenTrial has no _trial_id")
    if "_storage" not in inspect.getsource(optuna.Study.__init__):
        problems.append("optuna Study no longer sets _storage")
    if problems:
        raise RuntimeError("audiogan.cluster.compat: pinned Ray/Optuna internals changed: "
                           + "; ".join(problems))
