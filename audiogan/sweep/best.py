"""`audiogan best SWEEP --out DIR`: the best trial of a sweep, its checkpoint, and plots.

Reads the sweep without starting Ray (finished or partial; local or URI). The best trial
is the one with the best objective over ALL its evaluations (not only its last: ASHA may
stop a trial right after a good rung). Writes OUT/checkpoint/ (loads in `audiogan
sample`), leaderboard.csv, best_config.yaml, best.json and plots/*.png.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from typing import Any

import pyarrow.fs as pafs
import yaml

from audiogan import storage
from audiogan.errors import UserError
from audiogan.metrics.registry import check_objective
from audiogan.sweep.keys import CRITIC_STEPS, LEADERBOARD, SPEC_FILE, STUDY_FILE
from audiogan.sweep.results import (TrialSummary, leaderboard, load_trials, stopped_early,
                                    write_leaderboard)
from audiogan.sweep.spec import baseline_point, parse_spec, same_point, trial_config

log = logging.getLogger(__name__)


def _sweep_spec(sweep: str) -> dict[str, Any]:
    path = storage.join(sweep, SPEC_FILE)
    if not storage.exists(path):
        return {}
    return yaml.safe_load(storage.read_bytes(path).decode()) or {}


def pick_best(trials: list[TrialSummary], mode: str) -> TrialSummary:
    scored = [t for t in trials if t.best_value is not None]
    if not scored:
        raise UserError("no trial of this sweep has reported the objective yet")
    key = (lambda t: t.best_value) if mode == "min" else (lambda t: -t.best_value)
    return min(scored, key=key)


def sweep_summary(trials: list[TrialSummary], spec: Any, best: TrialSummary) -> dict[str, Any]:
    """What a sweep did (trial counts, ASHA stops) and, when it ran WaveGAN's defaults as a
    baseline trial, that trial's best objective beside the best trial's."""
    max_cs = spec.max_critic_steps if spec is not None else 0
    out: dict[str, Any] = {
        "trials_by_status": {s: sum(t.status == s for t in trials)
                             for s in sorted({t.status for t in trials})},
        "stopped_early_by_asha": sum(stopped_early(t, max_cs) for t in trials),
        "max_critic_steps": max_cs, "baseline": None}
    if spec is not None and spec.baseline:
        point = baseline_point(spec)
        base = next((t for t in trials if same_point(t.params, point)), None)
        if base is not None:
            out["baseline"] = {"trial_id": base.trial_id, "params": base.params,
                               "value": base.best_value, "at_critic_steps": base.best_critic_steps,
                               "critic_steps": base.last_critic_steps,
                               "is_best": base.trial_id == best.trial_id}
    return out


def copy_checkpoint(best: TrialSummary, dest: str) -> None:
    if not best.checkpoint:
        raise UserError(f"trial {best.trial_id} kept no checkpoint")
    fs_out, out_path = storage.resolve(dest)
    if fs_out.get_file_info(out_path).type != pafs.FileType.NotFound:
        fs_out.delete_dir(out_path)
    fs_out.create_dir(out_path, recursive=True)
    pafs.copy_files(best.checkpoint, out_path, source_filesystem=best.checkpoint_fs,
                    destination_filesystem=fs_out)


def study_for(sweep: str, resolved: dict[str, Any]):
    """The sweep's Optuna study (None when its storage is gone)."""
    import optuna

    name = resolved.get("study_name") or os.path.basename(sweep.rstrip("/"))
    local_db = storage.join(sweep, STUDY_FILE)
    url = resolved.get("optuna_storage") or ""
    if storage.exists(local_db):
        if storage.is_uri(local_db):  # SQLite needs a local file
            tmp = os.path.join(tempfile.mkdtemp(prefix="audiogan-study-"), "optuna.db")
            with open(tmp, "wb") as f:
                f.write(storage.read_bytes(local_db))
            local_db = tmp
        url = f"sqlite:///{os.path.abspath(local_db)}"
    if not url:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=url)
    except (KeyError, ValueError, RuntimeError) as exc:
        log.warning("no Optuna study '%s' at %s: %s", name, url, exc)
        return None


def plot_all(trials: list[TrialSummary], metric: str, spec: dict[str, Any], study: Any,
             out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    os.makedirs(out, exist_ok=True)

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
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
        for ax, key in zip(axes[0], keys):
            pts = [(t.params.get(key), t.best_value) for t in trials if t.best_value is not None]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18)
            if (search.get(key) or {}).get("type") == "loguniform":
                ax.set_xscale("log")
            ax.set_xlabel(key)
            ax.set_ylabel(f"best {metric}")
        fig.tight_layout()
        written.append(_save(fig, os.path.join(out, "objective_vs_hyperparameters.png")))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    importances, note = _importances(study)
    if importances:
        names = list(importances)
        ax.barh(names, [importances[n] for n in names])
        ax.set_xlabel("importance (Optuna default evaluator)")
    else:
        ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True)
        ax.set_axis_off()
    ax.set_title("Optuna parameter importances")
    fig.tight_layout()
    written.append(_save(fig, os.path.join(out, "param_importances.png")))
    return written


def _importances(study: Any) -> tuple[dict[str, float], str]:
    if study is None:
        return {}, "no Optuna study found"
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 3:
        return {}, f"too few completed trials ({len(done)}) for importances"
    try:
        return dict(optuna.importance.get_param_importances(study)), ""
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {}, f"importances unavailable: {exc}"


def _save(fig: Any, path: str) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cli_main(args: argparse.Namespace) -> int:
    sweep = args.sweep if storage.is_uri(args.sweep) else os.path.abspath(args.sweep)
    if not storage.is_dir(sweep):
        raise UserError(f"sweep '{args.sweep}' not found")
    resolved_doc = _sweep_spec(sweep)
    resolved = resolved_doc.pop("resolved", {}) if resolved_doc else {}
    metric = args.metric or resolved_doc.get("metric") or "eval/ndb"
    # The registry says which way is better; a --mode against it is a one-line error.
    mode = check_objective(metric, args.mode or "", where="--metric")
    trials = load_trials(sweep, metric, mode)
    best = pick_best(trials, mode)
    out = args.out
    storage.makedirs(out)
    copy_checkpoint(best, storage.join(out, "checkpoint"))
    board = leaderboard(sweep, metric, mode, trials)
    write_leaderboard(board, storage.join(out, LEADERBOARD))
    spec = parse_spec(best.constants["spec"]) if "spec" in best.constants else None
    if spec is not None:
        cfg_yaml = trial_config(spec, best.params).to_yaml()
    else:
        cfg_yaml = yaml.safe_dump(best.params)
    storage.write_bytes_atomic(storage.join(out, "best_config.yaml"), cfg_yaml.encode())
    summary = sweep_summary(trials, spec, best)
    storage.write_json_atomic(storage.join(out, "best.json"), {
        "sweep": sweep, "metric": metric, "mode": mode, "trial_id": best.trial_id,
        "value": best.best_value, "at_critic_steps": best.best_critic_steps,
        "params": best.params, "checkpoint_source": best.checkpoint,
        "trials": len(trials), "scope": "all evaluations", "date": time.strftime("%Y-%m-%d"),
        **summary})
    plots_dir = out if not storage.is_uri(out) else tempfile.mkdtemp(prefix="audiogan-plots-")
    paths = plot_all(trials, metric, resolved_doc, study_for(sweep, resolved),
                     os.path.join(plots_dir, "plots"))
    if storage.is_uri(out):
        for p in paths:
            with open(p, "rb") as f:
                storage.write_bytes_atomic(storage.join(out, "plots", os.path.basename(p)), f.read())
    sys.stdout.write(board.drop(columns=["checkpoint"]).to_string(index=False) + "\n")
    sys.stdout.write(f"best: trial {best.trial_id} {metric}={best.best_value:.4g} at "
                     f"{best.best_critic_steps} critic steps -> {storage.join(out, 'checkpoint')}\n")
    base = summary["baseline"]
    if base is not None:
        sys.stdout.write(f"baseline (WaveGAN defaults): trial {base['trial_id']} {metric}="
                         f"{base['value']:.4g}" if base["value"] is not None else
                         f"baseline (WaveGAN defaults): trial {base['trial_id']} no {metric}")
        sys.stdout.write("\n")
    sys.stdout.write(f"ASHA stopped {summary['stopped_early_by_asha']} of {len(trials)} trials "
                     f"early; by status: {summary['trials_by_status']}\n")
    return 0
