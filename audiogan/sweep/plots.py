"""The plots `audiogan best` writes (matplotlib, Agg): the objectives over critic steps per
trial, each objective against each hyperparameter, Optuna's parameter importances, and
for several objectives the Pareto front of every evaluation."""

from __future__ import annotations

import os
from typing import Any, Sequence

from audiogan.sweep.keys import CRITIC_STEPS
from audiogan.sweep.objectives import Objective
from audiogan.sweep.results import TrialSummary, sweep_front


def plot_all(trials: list[TrialSummary], objectives: Sequence[Objective], spec: dict[str, Any],
             study: Any, out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    metric = objectives[0].metric
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for t in trials:
        h = t.history
        if metric in h and CRITIC_STEPS in h:
            ev = h[[CRITIC_STEPS, metric]].dropna()
            if len(ev):
                ax.plot(ev[CRITIC_STEPS], ev[metric], marker="o", ms=3, label=t.trial_id)
    ax.set_xlabel("critic steps")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial")
    if len(trials) <= 12:
        ax.legend(fontsize=7)
    written.append(_save(fig, os.path.join(out, "objective_over_critic_steps.png")))

    search = spec.get("search") or {}
    keys = list(search) or sorted({k for t in trials for k in t.params})
    if keys:
        rows = len(objectives)
        fig, axes = plt.subplots(rows, len(keys), figsize=(3.2 * len(keys), 3.2 * rows),
                                 squeeze=False)
        for r, o in enumerate(objectives):
            for ax, key in zip(axes[r], keys):
                pts = [(t.params[key], t.vector[o.metric]) for t in trials
                       if t.vector is not None and key in t.params]
                if pts:
                    xs = [p[0] if isinstance(p[0], (int, float)) and not isinstance(p[0], bool)
                          else str(p[0]) for p in pts]
                    ax.scatter(xs, [p[1] for p in pts], s=18)
                if (search.get(key) or {}).get("type") == "loguniform":
                    ax.set_xscale("log")
                ax.set_xlabel(key)
                ax.set_ylabel(o.metric)
        fig.tight_layout()
        written.append(_save(fig, os.path.join(out, "objective_vs_hyperparameters.png")))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    importances, note = _importances(study)
    if importances:
        names = list(importances)
        ax.barh(names, [importances[n] for n in names])
        ax.set_xlabel(f"importance for {metric} (Optuna default evaluator)")
    else:
        ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True)
        ax.set_axis_off()
    ax.set_title("Optuna parameter importances")
    fig.tight_layout()
    written.append(_save(fig, os.path.join(out, "param_importances.png")))
    if len(objectives) > 1:
        written.append(plot_pareto(trials, objectives, os.path.join(out, "pareto_front.png")))
    return written


def plot_pareto(trials: list[TrialSummary], objectives: Sequence[Objective], path: str) -> str:
    """Every evaluation in the plane of the first two objectives, the sweep's Pareto front
    (over all objectives) highlighted."""
    import matplotlib.pyplot as plt

    x, y = objectives[0], objectives[1]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    every = [e for t in trials for e in t.evaluations]
    ax.scatter([e.vector[x.metric] for e in every], [e.vector[y.metric] for e in every],
               s=14, c="0.7", label="evaluations")
    front = sorted((e for _, e in sweep_front(trials)), key=lambda e: e.vector[x.metric])
    ax.plot([e.vector[x.metric] for e in front], [e.vector[y.metric] for e in front],
            "o-", c="C3", ms=5, label="Pareto front")
    ax.set_xlabel(f"{x.metric} ({'lower' if x.mode == 'min' else 'higher'} is better)")
    ax.set_ylabel(f"{y.metric} ({'lower' if y.mode == 'min' else 'higher'} is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _importances(study: Any) -> tuple[dict[str, float], str]:
    if study is None:
        return {}, "no Optuna study found"
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 3:
        return {}, f"too few completed trials ({len(done)}) for importances"
    # A multi-objective study: the importances for the first objective.
    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    try:
        return dict(optuna.importance.get_param_importances(study, target=target)), ""
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {}, f"importances unavailable: {exc}"


def _save(fig: Any, path: str) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
