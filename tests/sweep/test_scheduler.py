"""BaselineASHA: ASHA's decisions for every trial but the baseline, which runs its budget."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from audiogan.sweep.keys import SWEEP_KEY
from audiogan.sweep.search import BaselineASHA

BASELINE = {"optim.lr_g": 1e-4, "loss.n_critic": 5}


def _trial(trial_id: str, lr_g: float, n_critic: int = 5):
    return SimpleNamespace(trial_id=trial_id, config={
        "optim.lr_g": lr_g, "loss.n_critic": n_critic, SWEEP_KEY: {"spec": {}}})


def _scheduler() -> BaselineASHA:
    return BaselineASHA(time_attr="t", metric="m", mode="min", max_t=100, grace_period=10,
                        reduction_factor=2, baseline=BASELINE)


def test_baseline_continues_where_asha_stops_an_equal_trial():
    sched = _scheduler()
    good, base, bad = _trial("good", 3e-4), _trial("base", 1e-4), _trial("bad", 2e-4)
    for t in (good, base, bad):
        sched.on_trial_add(None, t)
    assert sched.on_trial_result(None, good, {"t": 10, "m": 0.1}) == TrialScheduler.CONTINUE
    # Both are worse than the rung's cut-off: ASHA stops `bad`, the baseline goes on.
    assert sched.on_trial_result(None, bad, {"t": 10, "m": 1.0}) == TrialScheduler.STOP
    assert sched.on_trial_result(None, base, {"t": 10, "m": 1.0}) == TrialScheduler.CONTINUE
    # ... up to its budget, where it stops like every trial.
    assert sched.on_trial_result(None, base, {"t": 100, "m": 1.0}) == TrialScheduler.STOP
    assert sched._num_stopped == 2


def test_no_baseline_is_plain_asha():
    sched = BaselineASHA(time_attr="t", metric="m", mode="min", max_t=100, grace_period=10,
                         reduction_factor=2, baseline=None)
    good, base = _trial("good", 3e-4), _trial("base", 1e-4)
    for t in (good, base):
        sched.on_trial_add(None, t)
    sched.on_trial_result(None, good, {"t": 10, "m": 0.1})
    assert sched.on_trial_result(None, base, {"t": 10, "m": 1.0}) == TrialScheduler.STOP
    assert not sched.is_baseline(base.config)


def test_a_trial_its_time_budget_ended_is_not_counted_as_stopped_early():
    import pandas as pd

    from audiogan.sweep.keys import BUDGET_SPENT
    from audiogan.sweep.results import stopped_early

    def summary(history: dict) -> SimpleNamespace:
        return SimpleNamespace(status="TERMINATED", last_critic_steps=700,
                               history=pd.DataFrame(history))

    asha = summary({"progress/critic_steps": [300, 700]})
    budget = summary({"progress/critic_steps": [300, 700], BUDGET_SPENT: [None, 1]})
    assert stopped_early(asha, 1500) and not stopped_early(budget, 1500)
    assert not stopped_early(asha, 700)   # ran its whole budget of critic steps


def test_status_shows_a_trial_saved_as_pending_that_has_reported_as_running():
    import pandas as pd

    from audiogan.sweep.status import _state

    def trial(status: str, timestamps: list) -> SimpleNamespace:
        return SimpleNamespace(status=status, last_critic_steps=100 if timestamps else 0,
                               replicate=None, params={},
                               history=pd.DataFrame({"timestamp": timestamps}))

    # Tune saves running trials as PENDING; one that reported has started
    assert _state(trial("PENDING", [1.0e9]), 600, None) == "RUNNING"
    assert _state(trial("PENDING", []), 600, None) == "PENDING"
    assert _state(trial("TERMINATED", [1.0e9]), 100, None) == "TERMINATED"
