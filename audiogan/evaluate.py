"""`audiogan evaluate CHECKPOINT --data DIR [--n N] [--out FILE] [--recon N]`: metrics with
the real floor.

Samples `n` examples (default `metrics.n_samples` of the checkpoint's config) from the fixed
evaluation seeds, scores them with `audiogan.metrics`, and prints a table with the real
floor (held-out real data scored the same way) beside each value. The JSON goes to
`--out` when given (the table to stdout), else to stdout (the table to stderr).

A complex checkpoint is scored through a log-magnitude dataset of the same clips: `--data`
itself when it is one, else its `metrics.reference_data` (`builders.build_evaluator`).
`--recon N` adds `eval/recon` (`audiogan.metrics.recon`: N test clips of `--data` inverted;
its floor column is the nearest training example, the random-z reference is printed
below the table and stored under `recon`): final evaluations only.
`--bootstrap B` runs a sweep's final evaluation instead (`audiogan.sweep.final_eval`: the
same scoring as `audiogan best --final`, every metric with an interval, the real floor at
a matched count), so a standalone run compares with a sweep's `final/*` values.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from typing import Any

from audiogan import storage
from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.metrics import registry

log = logging.getLogger(__name__)


def evaluate_checkpoint(checkpoint: str, data: str, n: int | None = None,
                        ndb_k: int | None = None, eval_seed: int | None = None,
                        recon: int | None = None, recon_steps: int | None = None,
                        recon_restarts: int | None = None) -> dict[str, Any]:
    """Score a checkpoint on `data`; `n`, `ndb_k` and `eval_seed` override the checkpoint's
    `metrics.*` (a final evaluation: more samples, K = 50, seeds disjoint from training's);
    `recon` > 0 adds eval/recon over that many test clips."""
    from audiogan.builders import build_evaluator, scored_as
    from audiogan.train.checkpoint import label_map_of, latest_in, load_generator

    checkpoint = latest_in(checkpoint)  # a run directory: its latest checkpoint
    start = time.perf_counter()
    generator, cfg, meta = load_generator(checkpoint)
    manifest = shards.read_manifest(data)
    generated = scored_as(checkpoint, meta, data, manifest)
    overrides = {k: v for k, v in (("metrics.n_samples", n), ("metrics.ndb_k", ndb_k),
                                   ("metrics.eval_seed", eval_seed)) if v is not None}
    cfg = cfg.override(overrides)
    if cfg.metrics.n_samples < cfg.metrics.ndb_k:
        raise UserError(f"{cfg.metrics.n_samples} samples are fewer than the "
                        f"{cfg.metrics.ndb_k} NDB bins: raise --n or lower --ndb-k")
    evaluator = build_evaluator(cfg, data, manifest, label_map=label_map_of(meta),
                                generated=generated)
    build_s = time.perf_counter() - start
    metrics = evaluator(generator)
    floor = dict(evaluator.floor)
    extra: dict[str, Any] = {}
    if recon:
        from audiogan.inversion import RESTARTS, STEPS
        from audiogan.metrics.recon import measure

        t0 = time.perf_counter()
        rec = measure(generator, meta, data, manifest, recon, label_map=label_map_of(meta),
                      steps=recon_steps or STEPS, restarts=recon_restarts or RESTARTS)
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        metrics["eval/recon"], floor["eval/recon"] = rec["eval/recon"], rec["nearest_train"]
        extra["recon"] = rec
    return {
        "checkpoint": os.path.abspath(checkpoint) if not storage.is_uri(checkpoint) else checkpoint,
        "data": data, "family": cfg.model.family, "step": meta.get("step"),
        "n_samples": cfg.metrics.n_samples, "ndb_k": cfg.metrics.ndb_k,
        "eval_seed": cfg.metrics.eval_seed, "metrics": metrics, "floor": floor,
        "floor_split": evaluator.floor_split,
        "seconds": {"build": round(build_s, 2), "evaluate": round(evaluator.last_seconds, 2)},
        **extra,
    }


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}"


def table(result: dict[str, Any]) -> str:
    floor_name = f"real floor ({result['floor_split'] or 'none'})"
    rows = [("metric", "model", floor_name, "better")]
    for key, value in result["metrics"].items():
        rows.append((key, _fmt(value), _fmt(result["floor"].get(key)), registry.metric_of(key).better))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = (f"{result['family']} step {result['step']}: n={result['n_samples']} samples, "
            f"K={result['ndb_k']} bins, evaluation {result['seconds']['evaluate']} s")
    if "recon" in result:
        r = result["recon"]
        lines.append(f"eval/recon: {r['n']} {r['split']} clips, {r['distance']}, {r['steps']} "
                     f"steps x {r['restarts']} restarts; floor column = nearest training "
                     f"example; random z {_fmt(r['random_z'])}")
    return "\n".join([head, *lines])


def evaluate_with_intervals(checkpoint: str, data: str, bootstrap: int, n: int | None = None,
                            ndb_k: int | None = None, eval_seed: int | None = None
                            ) -> dict[str, Any]:
    """The sweep's final evaluation (`audiogan.sweep.final_eval`) of one checkpoint: the same
    scoring, so standalone runs compare with a sweep's `final/*` values."""
    from audiogan.sweep.final_eval import evaluate_final
    from audiogan.sweep.spec import FinalSpec
    from audiogan.train.checkpoint import latest_in

    settings = FinalSpec().to_dict()
    settings.update({k: v for k, v in (("n", n), ("ndb_k", ndb_k), ("eval_seed", eval_seed),
                                       ("bootstrap", bootstrap)) if v is not None})
    if settings["n"] < settings["ndb_k"] or settings["bootstrap"] < 1:
        raise UserError("--bootstrap needs B >= 1 and --n at least --ndb-k")
    result = evaluate_final(latest_in(checkpoint), data, settings)
    return {"data": data, **result}


def interval_table(result: dict[str, Any]) -> str:
    def cell(rec: dict[str, Any] | None) -> str:
        if rec is None:
            return "-"
        return f"{_fmt(rec['value'])} [{_fmt(rec.get('lo'))}, {_fmt(rec.get('hi'))}]"

    matched = result.get("matched") or {}
    rows = [("metric", f"model (n={result['n']})",
             f"model (n={matched.get('n', '-')})", "real floor (matched)")]
    for key, rec in result["metrics"].items():
        floor_key = key.replace("final/eval/", "final/floor/", 1)
        rows.append((key, cell(rec), cell(matched.get("model", {}).get(key)),
                     cell(matched.get("floor", {}).get(floor_key))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = (f"step {result['step']}: n={result['n']}, K={result['ndb_k']}, "
            f"{round(result['confidence'] * 100)}% intervals from {result['bootstrap']} "
            f"bootstrap draws, {result['seconds']} s")
    return "\n".join([head, *lines])


def cli_main(args: argparse.Namespace) -> int:
    if getattr(args, "bootstrap", None) is not None:
        if getattr(args, "recon", None):
            raise UserError("--recon and --bootstrap are separate evaluations: run them apart")
        result = evaluate_with_intervals(args.checkpoint, args.data, args.bootstrap, args.n,
                                         args.ndb_k, args.eval_seed)
        shown = interval_table(result)
    else:
        result = evaluate_checkpoint(args.checkpoint, args.data, args.n, args.ndb_k,
                                     args.eval_seed, recon=getattr(args, "recon", None),
                                     recon_steps=getattr(args, "recon_steps", None),
                                     recon_restarts=getattr(args, "recon_restarts", None))
        shown = table(result)
    text = json.dumps(result, indent=2, sort_keys=True, allow_nan=True)
    if args.out:
        storage.write_bytes_atomic(args.out, (text + "\n").encode())
        print(shown)
        print(f"wrote {args.out}")
    else:
        print(shown, file=sys.stderr)
        print(text)
    return 0
