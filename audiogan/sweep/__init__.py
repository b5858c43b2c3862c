"""`audiogan sweep SPEC.yaml`: a Ray Tune + Optuna sweep over one preset.

The sweep directory (`--storage`/NAME, local path or pyarrow.fs URI) describes itself:
`sweep.yaml` (the resolved spec, written before anything starts), Tune's experiment state,
one directory per trial (TensorBoard events, progress.csv, checkpoints), `optuna.db` (the
study; SQLite on the driver's node unless the spec names a database URL) and, at the end,
`leaderboard.csv`. `--resume` continues it with `Tuner.restore`.
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
from audiogan.sweep.keys import (CRITIC_STEPS, DEFAULT_STORAGE, LEADERBOARD, LOOP, SESSION,
                                 SPEC_FILE, STUDY_FILE, SWEEP_KEY, TUNER_STATE)
from audiogan.sweep.spec import (SweepSpec, baseline_point, load_spec, probe_config,
                                 spec_to_yaml, trial_config)

log = logging.getLogger(__name__)

DRIVER_MEMORY_BYTES = 256 * 1024 * 1024  # a multi-worker trial's driver: no CPU, see below


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    cfg = probe_config(spec)
    if spec.workers == 1:
        res = {"cpu": float(cfg.compute.cpus_per_worker)}
        if spec.gpu:
            res["gpu"] = 1.0
        return res
    # The trial only drives a TorchTrainer that asks for its own workers. Tune rejects
    # {"cpu": 0}, and any CPU fraction would keep a 2-worker run from ever fitting on a
    # 2-core machine (workers take whole CPUs), so the driver reserves memory only.
    return {"cpu": 0, "memory": float(DRIVER_MEMORY_BYTES)}


def concurrency(spec: SweepSpec, cluster_cpus: float, local: bool) -> int:
    """Trials in flight: the spec's limit, never more than the trials asked for, and
    locally never more CPUs in use than the machine has."""
    limit = min(spec.max_concurrent_trials, spec.num_samples)
    if local:
        per_trial = spec.workers * probe_config(spec).compute.cpus_per_worker
        limit = min(limit, max(1, int(cluster_cpus // per_trial)))
    return max(1, limit)


def study_storage_url(spec: SweepSpec, sweep_dir: str, name: str) -> str:
    if spec.optuna_storage:
        return spec.optuna_storage
    if storage.is_uri(sweep_dir):
        # SQLite needs a local file: keep it on the driver's node, copy it to the sweep at the end.
        local = os.path.join(os.path.expanduser("~/.cache/audiogan/optuna"), name)
        os.makedirs(local, exist_ok=True)
        return f"sqlite:///{os.path.join(local, STUDY_FILE)}"
    return f"sqlite:///{os.path.join(sweep_dir, STUDY_FILE)}"


def build_tuner(spec: SweepSpec, data: str, sweep_dir: str, *, local: bool,
                cluster_cpus: float, loop: str = LOOP, session: str = SESSION,
                restore: bool = False, hooks: FaultHooks = FaultHooks()):
    """The Tuner for a fresh sweep, or the restored one (`restore=True`)."""
    from ray import tune

    from audiogan.sweep.search import build_scheduler, build_searcher, search_space
    from audiogan.sweep.trial import run_trial

    trainable = tune.with_resources(run_trial, trial_resources(spec))
    if restore:
        return tune.Tuner.restore(sweep_dir, trainable, resume_unfinished=True,
                                  resume_errored=True)
    storage_path, name = _split(sweep_dir)
    constants = {"spec": spec.to_dict(), "data": data, "loop": loop, "session": session,
                 "train_storage": storage.join(sweep_dir, "train"), "hooks": hooks.to_dict()}
    param_space = {**search_space(spec), SWEEP_KEY: constants}
    scheduler = build_scheduler(spec)
    searcher = build_searcher(spec, study_storage_url(spec, sweep_dir, name), name)
    tune_config = tune.TuneConfig(
        search_alg=searcher, scheduler=scheduler, num_samples=spec.num_samples,
        max_concurrent_trials=concurrency(spec, cluster_cpus, local),
        trial_dirname_creator=_trial_dirname, trial_name_creator=_trial_dirname)
    keep = probe_config(spec).train.keep_best
    run_config = tune.RunConfig(
        name=name, storage_path=storage_path,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=keep,
                                                checkpoint_score_attribute=spec.metric,
                                                checkpoint_score_order=spec.mode),
        failure_config=tune.FailureConfig(max_failures=probe_config(spec).train.max_failures),
        progress_reporter=_reporter(spec), verbose=1)
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                      run_config=run_config)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _reporter(spec: SweepSpec):
    from ray.tune import CLIReporter

    metrics = {spec.metric: spec.metric, CRITIC_STEPS: "critic_steps", "loss/wdist": "wdist",
               "time/step_s": "step_s"}
    return CLIReporter(metric_columns=metrics, parameter_columns=list(spec.search),
                       metric=spec.metric, mode=spec.mode, sort_by_metric=True,
                       max_report_frequency=30, max_column_length=14)


def _split(path: str) -> tuple[str, str]:
    path = path.rstrip("/")
    if storage.is_uri(path):
        parent, name = path.rsplit("/", 1)
        return parent, name
    return os.path.dirname(os.path.abspath(path)), os.path.basename(path)


def _sweep_dir(args: argparse.Namespace) -> tuple[str, str]:
    name = args.name or os.path.splitext(os.path.basename(args.spec))[0]
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        # The sweep directory must stay inside --storage.
        raise UserError(f"--name '{name}' must be a plain name (no '/', not '..')")
    root = args.storage or DEFAULT_STORAGE
    root = root if storage.is_uri(root) else os.path.abspath(root)
    return storage.join(root, name), name


def run_sweep(spec: SweepSpec, data: str, sweep_dir: str, name: str, *, address: str | None = None,
              resume: bool = False, loop: str = LOOP, session: str = SESSION,
              hooks: FaultHooks = FaultHooks()) -> int:
    """Run (or resume) a sweep; returns how many trials are left unfinished (interrupted)."""
    from audiogan.cluster.start import start_ray
    from audiogan.data.shards import read_manifest
    from audiogan.sweep.results import leaderboard, write_leaderboard

    state = storage.join(sweep_dir, TUNER_STATE)
    if resume and not storage.exists(state):
        raise UserError(f"nothing to resume at '{sweep_dir}' (no {TUNER_STATE})")
    if not resume and storage.exists(state):
        raise UserError(f"sweep '{sweep_dir}' exists: pass --resume to continue it, "
                        "or --name for a new one")
    # Trials run with the trial directory as working directory: a relative path breaks there.
    data = data if storage.is_uri(data) else os.path.abspath(data)
    read_manifest(data)  # a missing or incomplete dataset fails here, not in every trial
    # Training-only reports carry no objective; the searcher and ASHA skip them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # CLIReporter: the objective's column
    url = study_storage_url(spec, sweep_dir, name)
    if not resume:
        storage.write_bytes_atomic(storage.join(sweep_dir, SPEC_FILE), spec_to_yaml(spec, {
            "name": name, "data": data, "sweep_dir": sweep_dir, "optuna_storage": url,
            "study_name": name, "audiogan": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
    ray = start_ray(address)  # a Ray started here lives until the process ends (CLI)
    tuner = build_tuner(spec, data, sweep_dir, local=ray.local, cluster_cpus=ray.cpus,
                        loop=loop, session=session, restore=resume, hooks=hooks)
    tuner.fit()
    _publish_study(url, sweep_dir)
    board = leaderboard(sweep_dir, spec.metric, spec.mode)
    write_leaderboard(board, storage.join(sweep_dir, LEADERBOARD))
    sys.stdout.write(board.drop(columns=["checkpoint"]).to_string(index=False) + "\n")
    unfinished = int((~board["status"].isin(["TERMINATED", "ERROR"])).sum()) if len(board) else 0
    return unfinished


def _publish_study(url: str, sweep_dir: str) -> None:
    """A study kept off the sweep directory (URI storage) is copied there for `best`."""
    target = storage.join(sweep_dir, STUDY_FILE)
    if not url.startswith("sqlite:///") or not storage.is_uri(sweep_dir):
        return
    local = url[len("sqlite:///"):]
    if os.path.exists(local):
        with open(local, "rb") as f:
            storage.write_bytes_atomic(target, f.read())


def cli_main(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    sweep_dir, name = _sweep_dir(args)
    if args.dry_run:
        sys.stdout.write(spec_to_yaml(spec, {"name": name, "sweep_dir": sweep_dir}))
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

