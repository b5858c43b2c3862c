"""`audiogan bench train` part `reporting`: what reporting costs, standalone and in Tune.

Standalone: `audiogan train`'s TorchTrainer with 1 and 2 workers, at the CPU presets and at
`loss.n_critic` 1, reporting by time (the default, `train.report_every_s`), for about
RUN_S seconds of training on a synthetic dataset. Between the first and the last report:
  wall steps/s     steps / wall seconds (the reports, the per-step all-reduce, everything)
  in-step steps/s  1 / the mean `time/step_s` (inside `wgan.train_step` only)
  loss             1 - wall / in-step: what a run loses to reporting; evaluation excluded
(the loop stamps `time/elapsed_s` before it evaluates, and evaluation runs only at the end).

In Tune: the same 2-worker run as one trial of a sweep (a TorchTrainer inside the Tune
trial, reports relayed to Tune), its wall seconds per step against the standalone run's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

from audiogan.config import resolve

RUN_S = 100.0
CASES = (("pianogan-cpu", {}), ("pianogan-cpu", {"loss.n_critic": 1}),
         ("spectogan-cpu", {}), ("spectogan-cpu", {"loss.n_critic": 1}))
TUNE_CASE = ("pianogan-cpu", {})
TARGETS = {"loss_to_reporting": "<= 0.05", "tune_over_standalone": ">= 0.85"}
MEASURE = {"metrics.n_samples": 64, "metrics.ndb_k": 8}


def _steady(reports: list[dict[str, Any]]) -> dict[str, float]:
    """Wall and in-step rates between the first and the last report."""
    first, timed = reports[0], reports[1:]
    steps = timed[-1]["progress/step"] - first["progress/step"]
    wall = timed[-1]["time/elapsed_s"] - first["time/elapsed_s"]
    step_s = sum(r["time/step_s"] * (r["progress/step"] - p["progress/step"])
                 for p, r in zip(reports, timed)) / steps
    return {"reports": len(reports), "timed_steps": steps, "wall_steps_per_s": steps / wall,
            "in_step_steps_per_s": 1.0 / step_s, "loss": 1.0 - step_s * steps / wall}


def _calibrated_steps(cfg: Any, data: str, seconds: float) -> int:
    from audiogan.bench.train_common import plain_seconds_per_step

    return max(8, int(seconds / plain_seconds_per_step(cfg, data, 3, 10)))


def standalone(cfg: Any, data: str, workers: int, total: int, work: str) -> dict[str, Any]:
    from audiogan.bench.train_common import report_log_run

    reports = report_log_run(cfg, data, workers, total, work)
    if len(reports) < 2:  # one interval between two reports holds exactly one report
        raise RuntimeError(f"{len(reports)} report(s): run longer than train.report_every_s")
    return {"workers": workers, "total_steps": total, **_steady(reports)}


def in_tune(preset: str, overrides: dict[str, Any], data: str, total: int, work: str
            ) -> dict[str, Any]:
    """The 2-worker run as the one trial of a sweep; timed from the Train loop's reports."""
    from audiogan.cluster.hooks import FaultHooks
    from audiogan.sweep import run_sweep
    from audiogan.sweep.spec import parse_spec

    log = os.path.join(work, f"tune-{time.time_ns()}.jsonl")
    cfg = resolve(preset, overrides)
    budget = total * cfg.loss.n_critic
    spec = parse_spec({
        "base": preset, "overrides": dict(overrides), "num_samples": 1,
        "search": {"optim.lr_g": {"type": "choice", "values": [cfg.optim.lr_g]}},
        "max_concurrent_trials": 1, "workers": 2, "max_critic_steps": budget,
        "grace_critic_steps": budget, "optuna_seed": 0})
    root = tempfile.mkdtemp(prefix="tune-", dir=work)
    t0 = time.perf_counter()
    run_sweep(spec, data, os.path.join(root, "s"), "s", hooks=FaultHooks(report_log=log))
    wall = time.perf_counter() - t0
    with open(log) as f:
        reports = [json.loads(line) for line in f]
    shutil.rmtree(root, ignore_errors=True)
    return {"workers": 2, "total_steps": total, "sweep_wall_s": wall, **_steady(reports)}


def bench_reporting(quick: bool, work: str) -> dict[str, Any]:
    from audiogan.bench import meets
    from audiogan.bench.train_common import synthetic_dataset
    from audiogan.cluster.start import ray_session

    run_s = 6.0 if quick else RUN_S
    extra = {"train.report_every_s": 1.0} if quick else {}
    out: dict[str, Any] = {"run_s": run_s, "targets": TARGETS, "standalone": [],
                           "report_every_s": resolve("pianogan-cpu", extra).train.report_every_s}
    data = {kind: synthetic_dataset(os.path.join(work, f"rep-{kind}"), kind, 256)
            for kind in ("notes", "spectrogram")}
    cases = CASES[:1] if quick else CASES
    # The dashboard stays on: a Tune trial's TorchTrainer needs it (cluster.start).
    with ray_session(None, os.cpu_count() or 2, log_to_driver=False):
        for preset, over in cases:
            base = {**MEASURE, **over, **extra}
            if quick:
                base.update({"model.d": 2, "optim.batch_size": 4})
            cfg = resolve(preset, base)
            kind = "notes" if cfg.model.family == "pianogan" else "spectrogram"
            total = _calibrated_steps(cfg, data[kind], run_s)
            for workers in (1, 2):
                row = standalone(cfg, data[kind], workers, total, work)
                row.update(preset=preset, n_critic=cfg.loss.n_critic,
                           meets=meets(row["loss"], TARGETS["loss_to_reporting"]))
                out["standalone"].append(row)
        preset, over = TUNE_CASE
        base = {**MEASURE, **over, **extra}
        if quick:
            base.update({"model.d": 2, "optim.batch_size": 4})
        cfg = resolve(preset, base)
        total = _calibrated_steps(cfg, data["notes"], run_s)
        alone = standalone(cfg, data["notes"], 2, total, work)
        tuned = in_tune(preset, base, data["notes"], total, work)
        ratio = tuned["wall_steps_per_s"] / alone["wall_steps_per_s"]
        out["tune"] = {"preset": preset, "standalone": alone, "in_tune": tuned,
                       "tune_over_standalone": ratio,
                       "meets": meets(ratio, TARGETS["tune_over_standalone"])}
    return out
