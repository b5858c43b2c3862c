"""One checkpoint's final evaluation: a large sample on unseen seeds, every metric with a
bootstrap interval, and the real floor compared at a matched count.

The checkpoint's generator makes `n` examples (default 2,000) from seeds `eval_seed ..
eval_seed + n - 1` (default 2,000,000: disjoint from the training-time evaluation seeds,
which start at `metrics.eval_seed` = 1,000,000; the spec and this function refuse an
overlap). NDB uses `ndb_k` bins (default 50) fitted by k-means on the training split.
Every metric gets a bootstrap interval (`audiogan.metrics.intervals`).

Counts matter (NDB's z-tests gain power with N, JS and nearest-neighbour distances shift
with N), so the real floor and the model are compared at the same N: the held-out split
has R examples; with R >= n both are scored at n, else the floor is scored on all R and the
model again on its first R examples (`matched`). The headline values (`metrics`) are at
n, the same for every checkpoint of the sweep, so checkpoints compare with each other at
full power.

Keys: `final/eval/<name>` for the model, `final/floor/<name>` for the real data, each a
record {value, lo, hi, n, k}: never mixed with the trial-time `eval/*` values.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.metrics import intervals
from audiogan.metrics.evaluator import conditional

log = logging.getLogger(__name__)

METHOD = ("bias-corrected percentile bootstrap over examples (audiogan.metrics.intervals); "
          "real floor and model compared at matched counts")


def final_key(metric: str, floor: bool = False) -> str:
    """'eval/ndb' -> 'final/eval/ndb' (model) or 'final/floor/ndb' (real data)."""
    name = metric.split("/", 1)[1]
    return f"final/floor/{name}" if floor else f"final/eval/{name}"


def _records(values: dict[str, dict[str, float]], n: int, k: int, floor: bool = False
             ) -> dict[str, dict[str, float]]:
    return {final_key(m, floor): {**v, "n": n, "k": k} for m, v in values.items()}


def evaluate_final(checkpoint: str, data: str, settings: dict[str, Any],
                   cache: dict[Any, Any] | None = None) -> dict[str, Any]:
    """The final evaluation of one checkpoint (see the module docstring). `settings`: the
    `final:` section; `cache`: evaluators shared between checkpoints of one sweep."""
    from audiogan.builders import build_evaluator, scored_as
    from audiogan.train.checkpoint import label_map_of, load_generator

    start = time.perf_counter()
    n, k, seed = int(settings["n"]), int(settings["ndb_k"]), int(settings["eval_seed"])
    generator, cfg, meta = load_generator(checkpoint)
    trained = range(cfg.metrics.eval_seed, cfg.metrics.eval_seed + cfg.metrics.n_samples)
    if seed < trained.stop and trained.start < seed + n:
        raise UserError(f"final evaluation seeds {seed}..{seed + n - 1} overlap the "
                        f"training-time evaluation seeds {trained.start}..{trained.stop - 1}")
    manifest = shards.read_manifest(data)
    generated = scored_as(checkpoint, meta, data, manifest)
    cfg = cfg.override({"metrics.n_samples": n, "metrics.ndb_k": k, "metrics.eval_seed": seed})
    label_map = label_map_of(meta)
    key = (cfg.model.latent_dim, None if label_map is None else tuple(label_map.names),
           cfg.metrics.classifier, cfg.metrics.reference_data, cfg.data.griffin_lim_iters,
           cfg.data.griffin_lim_momentum, cfg.data.representation, n, k, seed)
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = build_evaluator(cfg, data, manifest, label_map=label_map, keep_floor=True,
                                     generated=generated)
    evaluator = cache[key]
    x, heard = evaluator.scored(evaluator.generate(generator))
    labels = ([evaluator.label_names[i] for i in evaluator.labels.tolist()]
              if conditional(generator) else None)
    draws, confidence = int(settings["bootstrap"]), float(settings["confidence"])
    if heard is None and evaluator.classifier is not None:
        heard = evaluator.heard(x)  # computed once for the model and its matched subset
    model = intervals.pieces(evaluator, x, labels, heard=heard)
    out: dict[str, Any] = {
        "checkpoint": checkpoint, "step": meta.get("step"), "critic_steps": meta.get("critic_steps"),
        "n": n, "ndb_k": k, "eval_seed": seed, "bootstrap": draws, "confidence": confidence,
        "method": METHOD,
        "metrics": _records(intervals.intervals(evaluator, model, draws, confidence, seed), n, k)}
    if evaluator.floor_x is not None:
        r = len(evaluator.floor_x)
        same = model if r >= n else intervals.pieces(
            evaluator, x[:r], None if labels is None else labels[:r],
            heard=None if heard is None else heard[:r])
        real = intervals.pieces(evaluator, evaluator.floor_x, evaluator.floor_labels,
                                heard=evaluator.floor_heard)
        out["matched"] = {
            "n": min(r, n), "split": evaluator.floor_split,
            "model": _records(intervals.intervals(evaluator, same, draws, confidence, seed + 1),
                              min(r, n), k),
            "floor": _records(intervals.intervals(evaluator, real, draws, confidence, seed + 2),
                              min(r, n), k, floor=True)}
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out
