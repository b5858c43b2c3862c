"""`audiogan bench sweep`: what a Tune trial costs on top of its training.

Sweeps of n identical single-worker trials (real `train_loop`, PianoGAN at tiny width on a
synthetic dataset, budget calibrated to ~60 s of training; `--quick`: ~5 s) at concurrency
1 and 2 (never more trials in flight than cores), plus one sweep of 2-worker trials
(TorchTrainer inside the trial). In-trial training time is the wall time of `train_loop`
inside each trial, written by `timed_train_loop`. Reported per sweep:
  overhead_per_trial_s = (concurrency x wall - sum(train)) / n_trials
  efficiency           = sum(train) / (concurrency x wall)   (1.0 = every slot always training)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from typing import Any

from audiogan import storage
from audiogan.bench import meets, write_result

BASE_OVERRIDES = {"model.d": 4, "optim.batch_size": 8, "loss.n_critic": 1,
                  "metrics.n_samples": 24, "metrics.ndb_k": 4, "train.report_every": 20}
# Single-worker trials (recorded in the JSON, checked in `met`); 2-worker trials: reported.
TARGETS = {"overhead_per_trial_s": "<= 5.0", "efficiency": ">= 0.85"}


def timed_train_loop(config: dict[str, Any], session: Any = None, hooks: Any = None) -> None:
    from audiogan.train.loop import train_loop

    t0 = time.perf_counter()
    train_loop(config, session=session, hooks=hooks)
    elapsed = time.perf_counter() - t0
    with open(os.path.join(config["run_dir"], "bench_train_s.json"), "w") as f:
        json.dump({"train_s": elapsed}, f)


def _write_data(root: str) -> str:
    import numpy as np
    import pyarrow.parquet as pq

    from audiogan.config import DataConfig
    from audiogan.data import scaling, shards

    rng = np.random.default_rng(0)
    n = {"train": 64, "validation": 16, "test": 16}
    keys, splits, xs = [], [], []
    for split, count in n.items():
        for i in range(count):
            x = np.stack([np.clip(np.rint(rng.normal(60, 8, 256)), 21, 108),
                          rng.exponential(0.1, 256), rng.exponential(0.3, 256) + 0.01], axis=1)
            keys.append(f"{split}/{i:04d}#0")
            splits.append(split)
            xs.append(x.astype(np.float32))
    os.makedirs(os.path.join(root, shards.SHARDS), exist_ok=True)
    pq.write_table(shards.make_table(keys, splits, [""] * len(keys), np.stack(xs)),
                   os.path.join(root, shards.SHARDS, "part-00000.parquet"))
    storage.write_json_atomic(os.path.join(root, shards.MANIFEST), {
        "schema_version": shards.SCHEMA_VERSION, "kind": "notes", "dataset": "bench",
        "example_shape": [256, 3], "counts": n, "files": dict.fromkeys(n, 1), "labels": [""],
        "note_scaling": scaling.note_constants(DataConfig()), "params": {}, "repaired": {},
        "rejected": {}, "source_fingerprint": "bench", "versions": {}, "created": "bench"})
    return root


def _step_seconds(data: str, workdir: str) -> float:
    """Median `time/step_s` the loop itself reports for the bench config, without Ray."""
    import statistics

    from audiogan.config import resolve
    from audiogan.train.loop import train_loop
    from audiogan.cluster.session import LocalSession

    cfg = resolve("pianogan-cpu", {**BASE_OVERRIDES, "train.total_steps": 30,
                                   "train.eval_every": 30, "train.report_every": 5})
    session = LocalSession()
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": workdir}, session=session)
    return max(1e-3, statistics.median(r["time/step_s"] for r in session.reports))


def _spec(steps: int, n_trials: int, concurrency: int, workers: int):
    from audiogan.sweep.spec import parse_spec

    return parse_spec({
        "base": "pianogan-cpu", "overrides": dict(BASE_OVERRIDES),
        "search": {"optim.lr_g": {"type": "loguniform", "low": 5e-5, "high": 2e-4}},
        "num_samples": n_trials, "max_concurrent_trials": concurrency, "workers": workers,
        "max_critic_steps": steps, "grace_critic_steps": steps, "optuna_seed": 0})


def _one(data: str, root: str, name: str, steps: int, n: int, concurrency: int,
         workers: int) -> dict[str, Any]:
    from audiogan.sweep import run_sweep
    from audiogan.sweep.results import load_trials

    sweep_dir = os.path.join(root, name)
    t0 = time.perf_counter()
    run_sweep(_spec(steps, n, concurrency, workers), data, sweep_dir, name,
              loop="audiogan.bench.sweep:timed_train_loop")
    wall = time.perf_counter() - t0
    trials = load_trials(sweep_dir, "eval/ndb", "min")
    train = []
    for t in trials:
        path = os.path.join(sweep_dir, f"trial_{t.trial_id}", "bench_train_s.json")
        if os.path.exists(path):
            train.append(json.load(open(path))["train_s"])
        elif "time_total_s" in t.history:  # multi-worker: the trial's own time (incl. Train)
            train.append(float(t.history["time_total_s"].max()))
    total = sum(train)
    return {"trials": n, "concurrency": concurrency, "workers_per_trial": workers,
            "steps_per_trial": steps, "wall_s": round(wall, 2),
            "train_s_per_trial": [round(x, 2) for x in train],
            "overhead_per_trial_s": round((concurrency * wall - total) / n, 2),
            "efficiency": round(total / (concurrency * wall), 3),
            "train_over_wall": round(total / wall, 3)}


def run(args: argparse.Namespace) -> str:
    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="ag-bs-", dir="/tmp"))
    target_s = 5.0 if args.quick else 60.0
    n_trials = 2 if args.quick else 4
    root = tempfile.mkdtemp(prefix="audiogan-bench-sweep-")
    data = _write_data(os.path.join(root, "data"))
    step_s = _step_seconds(data, os.path.join(root, "calib"))
    steps = max(5, math.ceil(target_s / step_s))
    cpus = os.cpu_count() or 1
    # The Ray start `audiogan sweep` uses (dashboard on: Train V2 cleans up a Tune trial's
    # TorchTrainer placement group through it), so the overhead measured is the product's.
    from audiogan.cluster.start import ray_session

    with ray_session(None, cpus, log_to_driver=False):
        runs = [_one(data, root, f"c{c}", steps, n_trials, c, 1) for c in (1, 2) if c <= cpus]
        multi = _one(data, root, "multi", steps, 1 if args.quick else 2, 1, 2) if cpus >= 2 else None
    single = {f"concurrency_{r['concurrency']}": r for r in runs}
    return write_result(args.out, "sweep", {
        "what": "per-trial overhead and efficiency of Tune sweeps of the real train_loop",
        "target_train_s_per_trial": target_s, "calibrated_step_s": round(step_s, 4),
        "quick": bool(args.quick), "single_worker": single, "multi_worker": multi,
        "targets": TARGETS,
        "met": {k: {"overhead": meets(r["overhead_per_trial_s"], TARGETS["overhead_per_trial_s"]),
                    "efficiency": meets(r["efficiency"], TARGETS["efficiency"])}
                for k, r in single.items()}})
