"""`audiogan sweep SPEC.yaml`: a Ray Tune + Optuna sweep over one preset, then its final stage.

The sweep directory (`--storage`/NAME, local path or pyarrow.fs URI) describes itself:
`sweep.yaml` (the resolved spec, the Optuna seed and study URL, written before anything
starts), Tune's experiment state, one directory per trial (its `config.yaml`, TensorBoard
events, progress.csv, checkpoints), `optuna.db` (the study, or its copy:
`audiogan.sweep.study`), `leaderboard.csv`, `search_done.json` once every search trial
finished, and with a `final:` section `final/` (`audiogan.sweep.final`: final evaluations
with intervals, seed replicates, `final.json`). `--resume` continues whichever stage was
interrupted: the search with `Tuner.restore`, the final stage from its records.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from audiogan import __version__, storage
from audiogan.cluster.hooks import FaultHooks
from audiogan.errors import UserError
from audiogan.sweep import study, tuning
from audiogan.sweep.keys import (DEFAULT_STORAGE, FINAL_EVAL, LEADERBOARD, LOOP, SEARCH_DONE,
                                 SESSION, SPEC_FILE, SWEEP_KEY, TUNER_STATE)
from audiogan.sweep.spec import (SweepSpec, baseline_point, derived_seed, load_spec,
                                 spec_to_yaml, trial_config)

log = logging.getLogger(__name__)


def build_tuner(spec: SweepSpec, data: str, sweep_dir: str, *, local: bool,
                cluster_cpus: float, loop: str = LOOP, session: str = SESSION,
                restore: bool = False, hooks: FaultHooks = FaultHooks(),
                seed: int = 0, study_url: str = ""):
    """The Tuner for a fresh sweep, or the restored one (`restore=True`)."""
    from ray import tune

    from audiogan.sweep.search import build_scheduler, build_searcher

    if restore:
        return tuning.restore(sweep_dir, spec)
    storage_path, name = storage.split(sweep_dir)
    url = study_url or study.study_url(spec.optuna_storage, sweep_dir, name)
    constants = tuning.constants(spec, data, sweep_dir, sweep_dir, loop=loop, session=session,
                                 hooks=hooks)
    tune_config = tune.TuneConfig(
        search_alg=build_searcher(spec, url, name, seed, sweep_dir),
        scheduler=build_scheduler(spec),
        num_samples=spec.num_samples,
        max_concurrent_trials=tuning.concurrency(spec, cluster_cpus, local),
        trial_dirname_creator=tuning.dirname, trial_name_creator=tuning.dirname)
    callbacks = tuning.callbacks(spec, (spec.optuna_storage, sweep_dir, name))
    return tune.Tuner(tuning.trainable(spec), param_space={SWEEP_KEY: constants},
                      tune_config=tune_config,
                      run_config=tuning.run_config(spec, name, storage_path, callbacks))


def _sweep_dir(args: argparse.Namespace) -> tuple[str, str]:
    name = args.name or os.path.splitext(os.path.basename(args.spec))[0]
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        # The sweep directory must stay inside --storage.
        raise UserError(f"--name '{name}' must be a plain name (no '/', not '..')")
    root = args.storage or DEFAULT_STORAGE
    root = root if storage.is_uri(root) else os.path.abspath(root)
    return storage.join(root, name), name


def check_data(spec: SweepSpec, data: str, manifest: dict[str, Any]) -> None:
    """One-line errors before Ray starts: the data fits every branch of the search space
    (labels for model.conditional), and every objective can be computed on it."""
    from audiogan.builders import check_objective_available
    from audiogan.sweep.space import probe_points
    from audiogan.train.run import check_data_matches

    for point in probe_points(spec.search):
        cfg = trial_config(spec, point)
        check_data_matches(cfg, manifest, data)
        for o in spec.objective_list:
            check_objective_available(cfg.override({"train.objective": o.metric,
                                                    "train.objective_mode": o.mode}), data)


def run_sweep(spec: SweepSpec, data: str, sweep_dir: str, name: str, *, address: str | None = None,
              resume: bool = False, loop: str = LOOP, session: str = SESSION,
              hooks: FaultHooks = FaultHooks(), final_eval: str = FINAL_EVAL) -> int:
    """Run (or resume) a sweep and its final stage; returns how many trials are left
    unfinished (interrupted)."""
    from audiogan.cluster.start import start_ray
    from audiogan.data.shards import read_manifest

    storage.check_writable(sweep_dir, "sweep directory")
    state = storage.join(sweep_dir, TUNER_STATE)
    if resume and not storage.exists(state):
        raise UserError(f"nothing to resume at '{sweep_dir}' (no {TUNER_STATE})")
    if not resume and storage.exists(state):
        raise UserError(f"sweep '{sweep_dir}' exists: pass --resume to continue it, "
                        "or --name for a new one")
    # Trials run with the trial directory as working directory: a relative path breaks there.
    data = data if storage.is_uri(data) else os.path.abspath(data)
    check_data(spec, data, read_manifest(data))  # a missing dataset fails here, not in trials
    # Training-only reports carry no objective; the searcher and ASHA skip them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # CLIReporter: the objective's column
    url = study.study_url(spec.optuna_storage, sweep_dir, name)
    copy = study.copy_target(url, sweep_dir)
    seed = spec.optuna_seed if spec.optuna_seed is not None else derived_seed(name)
    if not resume:
        storage.write_bytes_atomic(storage.join(sweep_dir, SPEC_FILE), spec_to_yaml(spec, {
            "name": name, "data": data, "sweep_dir": sweep_dir, "optuna_storage": url,
            "study_name": name, "optuna_seed": seed,
            "optuna_seed_from": "spec" if spec.optuna_seed is not None else "sweep name",
            "audiogan": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
    elif copy is not None:
        study.restore(url, copy)  # a new driver node: the study comes back from the sweep dir
    study.bind(name, url, sweep_dir)  # what Tune's unpickled searcher and backup will use
    ray = start_ray(address)  # a Ray started here lives until the process ends (CLI)
    if not storage.exists(storage.join(sweep_dir, SEARCH_DONE)):
        unfinished = _search(spec, data, sweep_dir, ray, resume=resume, loop=loop,
                             session=session, hooks=hooks, seed=seed, url=url, copy=copy)
        if unfinished:
            return unfinished
    if spec.final is None:
        return 0
    from audiogan.sweep.final import read_final, run_final, with_final_columns
    from audiogan.sweep.results import leaderboard, write_leaderboard

    unfinished = run_final(spec, data, sweep_dir, local=ray.local, cluster_cpus=ray.cpus,
                           loop=loop, session=session, hooks=hooks, final_eval=final_eval)
    if not unfinished:
        board = with_final_columns(leaderboard(sweep_dir, spec.objective_list,
                                               selection=spec.selection), read_final(sweep_dir))
        write_leaderboard(board, storage.join(sweep_dir, LEADERBOARD))
    return unfinished


def _search(spec: SweepSpec, data: str, sweep_dir: str, ray: Any, *, resume: bool, loop: str,
            session: str, hooks: FaultHooks, seed: int, url: str, copy: str | None) -> int:
    from audiogan.sweep.results import leaderboard, write_leaderboard

    tuner = build_tuner(spec, data, sweep_dir, local=ray.local, cluster_cpus=ray.cpus,
                        loop=loop, session=session, restore=resume, hooks=hooks, seed=seed,
                        study_url=url)
    tuner.fit()
    study.fold_wal(url)
    if copy is not None:
        study.backup(url, copy)
    board = leaderboard(sweep_dir, spec.objective_list, selection=spec.selection)
    write_leaderboard(board, storage.join(sweep_dir, LEADERBOARD))
    sys.stdout.write(board.drop(columns=["checkpoint"]).to_string(index=False) + "\n")
    unfinished = int((~board["status"].isin(["TERMINATED", "ERROR"])).sum()) if len(board) else 0
    if not unfinished:
        storage.write_json_atomic(storage.join(sweep_dir, SEARCH_DONE),
                                  {"trials": len(board), "date": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return unfinished


def cli_main(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    sweep_dir, name = _sweep_dir(args)
    if args.dry_run:
        seed = spec.optuna_seed if spec.optuna_seed is not None else derived_seed(name)
        sys.stdout.write(spec_to_yaml(spec, {"name": name, "sweep_dir": sweep_dir,
                                             "optuna_seed": seed}))
        example = trial_config(spec, baseline_point(spec))
        sys.stdout.write("# a trial with the base values:\n" + example.to_yaml())
        return 0
    if args.resume and not args.data:
        args.data = _spec_data(sweep_dir)
    if not args.data:
        raise UserError("--data DIR is required (a preprocessed dataset)")
    unfinished = run_sweep(spec, args.data, sweep_dir, name, address=args.address,
                           resume=args.resume, hooks=args.fault_hooks)
    if unfinished:
        print(f"sweep interrupted with {unfinished} unfinished trial(s); continue with:\n"
              f"  audiogan sweep {args.spec} --resume --name {name}"
              + (f" --storage {args.storage}" if args.storage else ""), file=sys.stderr)
        return 130
    failed = _failed_trials(sweep_dir)
    if failed:
        n_failed, n_total, error = failed
        if n_failed == n_total:  # nothing to pick a best from: the command failed
            print(f"audiogan: error: all {n_total} trials failed (first error: {error}); "
                  f"see the trials' error.txt under {sweep_dir}", file=sys.stderr)
            return 1
        print(f"warning: {n_failed} of {n_total} trials failed (first error: {error})",
              file=sys.stderr)
    if spec.final is not None:
        print(f"final stage: {storage.join(sweep_dir, 'final', 'final.json')}")
    print(f"sweep done: {sweep_dir}  (leaderboard.csv; `audiogan best {sweep_dir} --out DIR`)")
    return 0


def _failed_trials(sweep_dir: str) -> tuple[int, int, str] | None:
    import io

    import pandas as pd

    path = storage.join(sweep_dir, LEADERBOARD)
    if not storage.exists(path):
        return None
    board = pd.read_csv(io.BytesIO(storage.read_bytes(path)))
    if not len(board) or "status" not in board:
        return None
    errored = board[board["status"] == "ERROR"]
    if not len(errored):
        return None
    error = "?"
    if not storage.is_uri(sweep_dir):
        import glob

        for path in sorted(glob.glob(os.path.join(sweep_dir, "trial_*", "error.txt"))):
            with open(path, errors="replace") as f:
                lines = [line for line in f.read().splitlines() if line.strip()]
            if lines:
                error = lines[-1].strip()[:300]
                break
    return len(errored), len(board), error


def _spec_data(sweep_dir: str) -> str | None:
    import yaml

    path = storage.join(sweep_dir, SPEC_FILE)
    if not storage.exists(path):
        return None
    return (yaml.safe_load(storage.read_bytes(path).decode()).get("resolved") or {}).get("data")

