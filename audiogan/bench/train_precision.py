"""`audiogan bench train` part `precision`: bf16 and torch.compile on this CPU.

Speed: the plain loop's steps/s (`wgan.train_step`, the presets' one thread) of the CPU
presets in fp32 and bf16, and with `compute.compile` (the generator, and the critic for the
generator step, compiled; the critic's own step stays eager) -- compile time reported
apart. Interleaved repeats, medians.

Quality: 300 steps of `spectogan-cpu` in fp32 with seeds 0 and 1 and in bf16 with seed 0,
each scored at the end by the evaluator (on `--source DATA` when given, else a synthetic
dataset). The tolerance is fixed before bf16 runs: for each compared value, bf16's distance
from fp32 (seed 0) must be at most the two fp32 seeds' distance from each other.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import torch

from audiogan.config import resolve

STEPS = 300
COMPARED = ("eval/ndb", "eval/nn_self", "loss/wdist")
TARGETS = {"bf16_within_seed_spread": "every compared value within the fp32 seed spread"}


def _steps_per_s(preset: str, overrides: dict[str, Any], data: str, steps: int,
                 warmup: int) -> tuple[float, float]:
    """(steps/s after warm-up, seconds of the warm-up: compilation when compiled)."""
    from audiogan import builders, wgan
    from audiogan.bench.train_common import plain_models

    cfg = resolve(preset, overrides)
    torch.set_num_threads(cfg.compute.cpus_per_worker)
    g, c, opt_g, opt_c, batches, next_z, loss, precision = plain_models(cfg, data)
    g_step, g_fakes, c_for_g = builders.compile_for_steps(cfg, g, g, c)

    done = [0]  # critic updates so far (lazy R1 skips as in the product)

    def run(n: int) -> None:
        for _ in range(n):
            wgan.train_step(g_step, c, opt_g, opt_c, batches, next_z, loss,
                            generator_raw=g_fakes, critic_raw=c_for_g, precision=precision,
                            critic_updates_done=done[0])
            done[0] += loss.n_critic

    t0 = time.perf_counter()
    run(warmup)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(steps)
    return steps / (time.perf_counter() - t0), warm


def speed(quick: bool, work: str) -> dict[str, Any]:
    from audiogan.bench.train_common import synthetic_dataset

    variants = {"fp32": {}, "bf16": {"compute.precision": "bf16"},
                "compile": {"compute.compile": True}}
    repeats, steps = (1, 2) if quick else (3, 20)
    out: dict[str, Any] = {}
    for preset in ("pianogan-cpu", "spectogan-cpu"):
        kind = "notes" if preset.startswith("piano") else "spectrogram"
        data = synthetic_dataset(os.path.join(work, f"prec-{kind}"), kind, 128)
        small = {"model.d": 2, "optim.batch_size": 4} if quick else {}
        runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
        for _ in range(repeats):  # interleaved
            for name, over in variants.items():
                runs[name].append(_steps_per_s(preset, {**small, **over}, data, steps,
                                               warmup=2))
        med = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
        out[preset] = {"steps_per_s": med,
                       "bf16_over_fp32": med["bf16"] / med["fp32"],
                       "compile_over_eager": med["compile"] / med["fp32"],
                       "compile_warmup_s": statistics.median(r[1] for r in runs["compile"]),
                       "timed_steps": steps, "repeats": repeats}
    return out


def _train(overrides: dict[str, Any], data: str, steps: int) -> dict[str, float]:
    from audiogan.cluster.session import LocalSession
    from audiogan.train.loop import train_loop

    cfg = resolve("spectogan-cpu", {"train.total_steps": steps, "train.eval_every": steps,
                                    "train.report_every": 1, **overrides})
    session = LocalSession()
    t0 = time.perf_counter()
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session)
    seconds = time.perf_counter() - t0
    last = session.reports[-1]
    tail = session.reports[-min(50, len(session.reports)):]
    out = {k: float(last[k]) for k in COMPARED if k.startswith("eval/")}
    out["loss/wdist"] = statistics.fmean(r["loss/wdist"] for r in tail)  # the last 50 steps
    out["seconds"] = seconds
    return out


def quality(quick: bool, work: str, source: str | None) -> dict[str, Any]:
    from audiogan.bench.train_common import synthetic_dataset

    steps = 6 if quick else STEPS
    data = source or synthetic_dataset(os.path.join(work, "prec-q"), "spectrogram", 256)
    small = {"model.d": 2, "metrics.n_samples": 16, "metrics.ndb_k": 4} if quick else {}
    runs = {"fp32_seed0": _train({**small, "train.seed": 0}, data, steps),
            "fp32_seed1": _train({**small, "train.seed": 1}, data, steps)}
    tolerance = {k: abs(runs["fp32_seed0"][k] - runs["fp32_seed1"][k]) for k in COMPARED}
    runs["bf16_seed0"] = _train({**small, "train.seed": 0, "compute.precision": "bf16"}, data,
                                steps)
    distance = {k: abs(runs["bf16_seed0"][k] - runs["fp32_seed0"][k]) for k in COMPARED}
    return {"steps": steps, "data": data if source else "synthetic", "runs": runs,
            "tolerance_fp32_seed_spread": tolerance, "bf16_distance_from_fp32": distance,
            "within": {k: distance[k] <= tolerance[k] for k in COMPARED},
            "bf16_seconds_over_fp32": runs["bf16_seed0"]["seconds"] /
            runs["fp32_seed0"]["seconds"]}


def bench_precision(quick: bool, work: str, source: str | None) -> dict[str, Any]:
    return {"targets": TARGETS, "speed": speed(quick, work),
            "bf16_check": quality(quick, work, source)}
