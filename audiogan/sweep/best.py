"""`audiogan best SWEEP [--out DIR] [--final] [--pareto]`: a sweep's answer, its checkpoint,
leaderboard, config and plots.

Reads the sweep without starting Ray (finished or partial; local or URI). The best trial
is chosen by the sweep's selection rule (`select:`; `audiogan.sweep.objectives`) over each
trial's evaluation the rule picks among ALL its evaluations (not only its last: ASHA may
stop a trial right after a good rung). When the sweep has a final stage
(`final/final.json`), the winner of the final evaluation is the answer instead: its
intervals come from thousands of samples, not the trial-time few hundred.

`--final` runs (or finishes) the final stage first, on a finished sweep too: the `final:`
section of its spec, or the defaults (top 3 + baseline, n 2000, K 50, 1000 bootstrap
draws, 3 replicates). `--pareto` also copies every checkpoint on the sweep's Pareto front
(OUT/pareto/, pareto.csv). Writes OUT/checkpoint/ (loads in `audiogan sample`),
leaderboard.csv, best_config.yaml (the full resolved config: `audiogan train --config`
trains it again), best.json, plots/*.png and the sweep page, page/index.html
(`audiogan.sweep.page`: leaderboard, plots, samples with players; opens from disk).
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
from audiogan.sweep.final import read_final, run_final, with_final_columns
from audiogan.sweep.keys import LEADERBOARD, SPEC_FILE, STUDY_FILE
from audiogan.sweep.objectives import Objective, Selection
from audiogan.sweep.page import write_sweep_page
from audiogan.sweep.plots import plot_all
from audiogan.sweep.results import (TrialSummary, leaderboard, load_trials, rank_trials,
                                    stopped_early, sweep_front, write_leaderboard)
from audiogan.sweep.space import same_point
from audiogan.sweep.spec import SweepSpec, baseline_point, parse_spec, trial_config

log = logging.getLogger(__name__)


def _sweep_doc(sweep: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the spec as written into sweep.yaml, its `resolved` block)."""
    path = storage.join(sweep, SPEC_FILE)
    if not storage.exists(path):
        return {}, {}
    doc = yaml.safe_load(storage.read_bytes(path).decode()) or {}
    return doc, doc.pop("resolved", {}) or {}


def _spec(doc: dict[str, Any]) -> SweepSpec | None:
    return parse_spec(doc, where="sweep.yaml") if doc else None


def pick_best(trials: list[TrialSummary], selection: Selection = Selection()) -> TrialSummary:
    ranked = [t for t in rank_trials(trials, selection) if t.vector is not None]
    if not ranked:
        raise UserError("no trial of this sweep has reported the objective yet")
    return ranked[0]


def sweep_summary(trials: list[TrialSummary], spec: Any, best: TrialSummary) -> dict[str, Any]:
    """What a sweep did (trial counts, ASHA stops) and, when it ran the paper's recipe as a
    baseline trial, that trial's trial-time answer beside the best trial's."""
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
                               "value": base.best_value, "vector": base.vector,
                               "at_critic_steps": base.best_critic_steps,
                               "critic_steps": base.last_critic_steps,
                               "is_best": base.trial_id == best.trial_id}
    return out


def copy_checkpoint(source: str | None, source_fs: Any, dest: str, trial_id: str = "") -> None:
    if not source:
        raise UserError(f"trial {trial_id} kept no checkpoint")
    if source_fs is None:
        source_fs, source = storage.resolve(source)
    fs_out, out_path = storage.resolve(dest)
    if fs_out.get_file_info(out_path).type != pafs.FileType.NotFound:
        fs_out.delete_dir(out_path)
    fs_out.create_dir(out_path, recursive=True)
    pafs.copy_files(source, out_path, source_filesystem=source_fs,
                    destination_filesystem=fs_out)


def copy_pareto(trials: list[TrialSummary], out: str) -> list[dict[str, Any]]:
    """Every evaluation on the sweep's Pareto front with its kept checkpoint, copied to
    OUT/pareto/<trial>_<critic steps>/, listed in OUT/pareto.csv."""
    import pandas as pd

    rows = []
    for t, e in sweep_front(trials):
        name = f"{t.trial_id}_{e.critic_steps}"
        if e.checkpoint:
            copy_checkpoint(e.checkpoint, e.checkpoint_fs, storage.join(out, "pareto", name))
        rows.append({"trial_id": t.trial_id, "critic_steps": e.critic_steps, **e.vector,
                     "copied_to": f"pareto/{name}" if e.checkpoint else "",
                     "checkpoint": e.checkpoint or "", **t.params})
    write_leaderboard(pd.DataFrame(rows), storage.join(out, "pareto.csv"))
    return rows


def study_for(sweep: str, resolved: dict[str, Any]):
    """The sweep's Optuna study (None when its storage is gone)."""
    import optuna

    name = resolved.get("study_name") or os.path.basename(sweep.rstrip("/"))
    local_db = storage.join(sweep, STUDY_FILE)
    url = resolved.get("optuna_storage") or ""
    if storage.exists(local_db):
        if storage.is_uri(local_db):  # SQLite needs a local file
            tmp = os.path.join(tempfile.mkdtemp(prefix="audiogan-study-"), STUDY_FILE)
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


def _final_stage(args: argparse.Namespace, sweep: str, spec: SweepSpec,
                 resolved: dict[str, Any]) -> int:
    from audiogan.cluster.start import start_ray
    from audiogan.sweep.spec import FinalSpec

    data = args.data or resolved.get("data")
    if not data:
        raise UserError("--data DIR is required (the sweep's sweep.yaml names none)")
    settings = spec.final_spec or FinalSpec()
    ray = start_ray(args.address) if settings.replicates else None
    unfinished = run_final(spec, data, sweep, settings=settings,
                           local=ray.local if ray else True, cluster_cpus=ray.cpus if ray else 1.0,
                           hooks=args.fault_hooks)
    if unfinished:
        print(f"final stage interrupted with {unfinished} unfinished replicate(s); run the "
              "same command again to continue", file=sys.stderr)
        return 130
    doc = read_final(sweep)
    board = with_final_columns(leaderboard(sweep, spec.objective_list, selection=spec.selection),
                               doc)
    write_leaderboard(board, storage.join(sweep, LEADERBOARD))
    print(f"final stage: winner trial {doc['winner']}; {storage.join(sweep, 'final', 'final.json')}")
    return 0


def cli_main(args: argparse.Namespace) -> int:
    page_seeds = getattr(args, "page_seeds", 4)
    if page_seeds < 0:
        raise UserError(f"--page-seeds must be >= 0, got {page_seeds}")
    sweep = args.sweep if storage.is_uri(args.sweep) else os.path.abspath(args.sweep)
    if not storage.is_dir(sweep):
        raise UserError(f"sweep '{args.sweep}' not found")
    doc, resolved = _sweep_doc(sweep)
    spec = _spec(doc)
    if args.final:
        if spec is None:
            raise UserError(f"'{sweep}' has no {SPEC_FILE}: cannot run its final stage")
        rc = _final_stage(args, sweep, spec, resolved)
        if rc or not args.out:
            return rc
    if not args.out:
        raise UserError("--out DIR is required (or --final to run only the final stage)")
    if args.metric:  # one metric by hand: trial-time values, the final stage not used
        objectives = (Objective(args.metric, check_objective(args.metric, args.mode or "",
                                                             where="--metric")),)
        selection, final = Selection(), None
    else:
        objectives = spec.objective_list if spec else (Objective("eval/ndb", "min"),)
        selection, final = (spec.selection if spec else Selection()), read_final(sweep)
    trials = load_trials(sweep, objectives, selection=selection)
    out = args.out
    storage.makedirs(out)
    if final is not None:
        best = next(t for t in trials if t.trial_id == final["winner"])
        record = next(r for r in final["evaluations"] if r["trial_id"] == best.trial_id)
        source, source_fs, picked_by = record["checkpoint"], None, "final evaluation"
    else:
        best = pick_best(trials, selection)
        source, source_fs = best.checkpoint, best.checkpoint_fs
        picked_by = "trial-time evaluations"
    copy_checkpoint(source, source_fs, storage.join(out, "checkpoint"), best.trial_id)
    board = with_final_columns(leaderboard(sweep, objectives, trials=trials,
                                           selection=selection), final)
    write_leaderboard(board, storage.join(out, LEADERBOARD))
    cfg_yaml = trial_config(spec, best.params).to_yaml() if spec else yaml.safe_dump(best.params)
    storage.write_bytes_atomic(storage.join(out, "best_config.yaml"), cfg_yaml.encode())
    summary = sweep_summary(trials, spec, best)
    pareto = copy_pareto(trials, out) if args.pareto else None
    first = objectives[0]
    info = {
        "sweep": sweep, "metric": first.metric, "mode": first.mode,
        "objectives": [{"metric": o.metric, "mode": o.mode} for o in objectives],
        "select": selection.to_dict(), "picked_by": picked_by, "trial_id": best.trial_id,
        "value": best.best_value, "vector": best.vector, "at_critic_steps": best.best_critic_steps,
        "params": best.params, "checkpoint_source": source, "trials": len(trials),
        "scope": "all evaluations", "date": time.strftime("%Y-%m-%d"), **summary,
        "final": final, "pareto": pareto}
    storage.write_json_atomic(storage.join(out, "best.json"), info)
    plots_dir = out if not storage.is_uri(out) else tempfile.mkdtemp(prefix="audiogan-plots-")
    paths = plot_all(trials, objectives, doc, study_for(sweep, resolved),
                     os.path.join(plots_dir, "plots"))
    if storage.is_uri(out):
        for p in paths:
            with open(p, "rb") as f:
                storage.write_bytes_atomic(storage.join(out, "plots", os.path.basename(p)), f.read())
    page = write_sweep_page(out, board, info, paths, trials, range(page_seeds))
    _print(board, best, summary, first, picked_by, out, len(trials), pareto)
    sys.stdout.write(f"sweep page: {page}\n")
    return 0


def _print(board: Any, best: TrialSummary, summary: dict[str, Any], first: Objective,
           picked_by: str, out: str, n_trials: int, pareto: list | None) -> None:
    sys.stdout.write(board.drop(columns=["checkpoint"]).to_string(index=False) + "\n")
    sys.stdout.write(f"best (by {picked_by}): trial {best.trial_id} {first.metric}="
                     f"{best.best_value:.4g} at {best.best_critic_steps} critic steps -> "
                     f"{storage.join(out, 'checkpoint')}\n")
    base = summary["baseline"]
    if base is not None:
        value = f"{first.metric}={base['value']:.4g}" if base["value"] is not None else \
            f"no {first.metric}"
        sys.stdout.write(f"baseline (the paper's recipe): trial {base['trial_id']} {value}\n")
    if pareto is not None:
        sys.stdout.write(f"Pareto front: {len(pareto)} checkpoint(s) -> {storage.join(out, 'pareto')}\n")
    sys.stdout.write(f"ASHA stopped {summary['stopped_early_by_asha']} of {n_trials} trials "
                     f"early; by status: {summary['trials_by_status']}\n")
