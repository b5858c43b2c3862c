"""Bootstrap intervals for the evaluation metrics (a sweep's final evaluation).

A sample set (generated, or the real floor's held-out examples) is reduced once to
per-example pieces (`pieces`): each example's NDB bin, its distance to the nearest
training example and to the nearest other example of the set, its note-histogram counts
and pitch-class entropy, the classifier's probabilities of what it sounds like, whether
that matched its requested label. Every metric of the registry is a function of those
pieces summed over the examples, so a bootstrap draw is a vector of example weights
(how often each example was drawn, multinomial with N draws of N) and one matrix product
per piece recomputes every metric for all draws at once (`statistics`; weights of ones give
exactly `Evaluator.score`). The point value is that of the whole set.

The interval is the bias-corrected percentile interval: the draws' percentiles, shifted
back by the bootstrap's estimate of the metric's bias (mean of the draws minus the point
value), then clipped to the metric's range. What it covers is the metric's expected value
for a set of N examples of the same generator (NDB, JS and the rest depend on N: hence
"compared at matched counts"). The shift matters for the histogram metrics: a resample
adds its own sampling noise on top of the sample's, so for a generator that matches the
training distribution each NDB bin's z-test rejects ~17% of the draws instead of 5%, and
the plug-in JS divergence doubles its bias; the plain percentile interval then sits above
the value it should cover (for JS it covers almost never: `tests/sweep/test_intervals.py`
simulates both). For means of per-example values the shift is ~0. The nearest-other
distance is computed once on the whole set (within a resample duplicates would be their
own neighbours at distance 0).

`eval/is_real` is a property of the real data, not of the set: it has no interval here
(the floor's `eval/is` is the same number, with one).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from audiogan.metrics import features, inception, nn, note_stats
from audiogan.metrics.ndb import nearest, two_proportion_different

SKIP = ("eval/is_real",)


@dataclasses.dataclass
class Pieces:
    """Per-example pieces of one sample set (None where the evaluator has no such metric)."""
    n: int
    assign: np.ndarray                            # NDB bin of each example
    nn_train: np.ndarray | None = None
    nn_self: np.ndarray | None = None
    note_counts: dict[str, np.ndarray] | None = None
    pc_entropy: np.ndarray | None = None
    probs: np.ndarray | None = None               # classifier probabilities, clamped
    hits: np.ndarray | None = None                # requested label recognised (0/1)
    labels: np.ndarray | None = None              # requested (or true) label names


def pieces(evaluator: Any, x_network: np.ndarray, labels: list[str] | None = None,
           heard: np.ndarray | None = None) -> Pieces:
    names = {m.name for m in evaluator.metrics}
    manifest = evaluator.manifest
    x = np.asarray(x_network)
    p = Pieces(n=len(x), assign=nearest(features.ndb_features(x, manifest),
                                        evaluator.ndb.centres))
    if names & {"eval/nn_train", "eval/nn_self"}:
        feats = features.nn_features(x, manifest)
        p.nn_train = nn.nn_to_each(feats, evaluator.nn_ref)
        p.nn_self = nn.nn_self_each(feats)
    if names & {"eval/note_overlap", "eval/pc_entropy", "eval/pc_entropy_gap"}:
        from audiogan.data import shards

        raw = shards.from_network(x, manifest)
        p.note_counts = note_stats.window_counts(raw)
        p.pc_entropy = note_stats.pitch_class_entropy_each(raw)
    if names & {"eval/is", "eval/cond_acc"} and evaluator.classifier is not None:
        if heard is None:
            heard = evaluator.heard(x)
        probs = inception.class_probabilities(evaluator.classifier, heard,
                                              device=evaluator.device).double().numpy()
        probs = np.clip(probs, 1e-12, None)
        p.probs = probs / probs.sum(1, keepdims=True)
        if labels is not None:
            predicted = np.asarray(evaluator.classifier_labels, dtype=object)[probs.argmax(1)]
            p.labels = np.asarray(labels, dtype=object)
            p.hits = (predicted == p.labels).astype(np.float64)
    return p


def example_weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """[draws, n]: how often each example is drawn in each bootstrap resample."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.float64)


def statistics(evaluator: Any, p: Pieces, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric the evaluator computes, for each row of example weights ([B, N] -> [B])."""
    names = [m.name for m in evaluator.metrics if m.name not in SKIP]
    w = np.asarray(weights, np.float64)
    total = w.sum(1)
    out: dict[str, np.ndarray] = {}
    if "eval/ndb" in names or "eval/ndb_js" in names:
        k = evaluator.ndb.k
        props = (w @ np.eye(k)[p.assign]) / total[:, None]
        train = evaluator.ndb.train_proportions
        if "eval/ndb" in names:  # every row has p.n draws: one z-test per bin and row
            out["eval/ndb"] = two_proportion_different(props, p.n, train,
                                                       evaluator.ndb.n_train).mean(1)
        if "eval/ndb_js" in names:
            out["eval/ndb_js"] = _js_rows(props, train)
    if "eval/nn_train" in names and p.nn_train is not None:
        out["eval/nn_train"] = w @ p.nn_train / total
    if "eval/nn_self" in names and p.nn_self is not None:
        out["eval/nn_self"] = w @ p.nn_self / total
    if "eval/note_overlap" in names and p.note_counts is not None:
        per_stat = []
        for stat in note_stats.STATS:
            h = w @ p.note_counts[stat]
            h = h / np.maximum(h.sum(1, keepdims=True), 1e-300)
            per_stat.append(np.minimum(h, evaluator.note_ref[stat][None, :]).sum(1))
        out["eval/note_overlap"] = np.mean(per_stat, axis=0)
    if p.pc_entropy is not None:
        entropy = w @ p.pc_entropy / total
        if "eval/pc_entropy" in names:
            out["eval/pc_entropy"] = entropy
        if "eval/pc_entropy_gap" in names:
            out["eval/pc_entropy_gap"] = np.abs(entropy - evaluator.pc_entropy_ref)
    if "eval/is" in names and p.probs is not None:
        mean_p = w @ p.probs / total[:, None]
        neg_entropy = w @ (p.probs * np.log(p.probs)).sum(1) / total
        out["eval/is"] = np.exp(neg_entropy - (mean_p * np.log(mean_p)).sum(1))
    if "eval/cond_acc" in names and p.hits is not None:
        out["eval/cond_acc"] = w @ p.hits / total
        for label in sorted(set(p.labels.tolist()), key=lambda v: (len(v), v)):
            mask = p.labels == label
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"eval/cond_acc/{label}"] = w[:, mask] @ p.hits[mask] / w[:, mask].sum(1)
    return out


def _js_rows(props: np.ndarray, q: np.ndarray) -> np.ndarray:
    """`ndb.js_divergence` of each row of `props` against `q` (natural log)."""
    p = props / np.maximum(props.sum(1, keepdims=True), 1e-300)
    q = np.asarray(q, np.float64) / max(float(np.sum(q)), 1e-300)
    m = 0.5 * (p + q[None, :])

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / b), 0.0).sum(1)

    return np.maximum(0.0, 0.5 * kl(p, m) + 0.5 * kl(np.broadcast_to(q, p.shape), m))


# The range each metric lives in (the shifted interval is clipped to it).
BOUNDS = {"eval/ndb": (0.0, 1.0), "eval/ndb_js": (0.0, float(np.log(2))),
          "eval/note_overlap": (0.0, 1.0), "eval/cond_acc": (0.0, 1.0),
          "eval/nn_self": (0.0, np.inf), "eval/nn_train": (0.0, np.inf),
          "eval/pc_entropy": (0.0, float(np.log2(12))), "eval/pc_entropy_gap": (0.0, np.inf),
          "eval/is": (1.0, np.inf)}


def bias_corrected(point: float, draws: np.ndarray, confidence: float,
                   bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float]:
    """The percentile interval of `draws` shifted by the bootstrap bias estimate
    (mean of the draws - point), clipped to `bounds`."""
    finite = draws[np.isfinite(draws)]
    if not len(finite) or not np.isfinite(point):
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [(1 - confidence) / 2, (1 + confidence) / 2])
    bias = float(finite.mean()) - point
    return (float(np.clip(lo - bias, *bounds)), float(np.clip(hi - bias, *bounds)))


def intervals(evaluator: Any, p: Pieces, draws: int = 1000, confidence: float = 0.95,
              seed: int = 0) -> dict[str, dict[str, float]]:
    """{metric: {value, lo, hi}} for every metric of the set (see the module docstring)."""
    rng = np.random.default_rng(seed)
    point = {k: float(v[0]) for k, v in statistics(evaluator, p, np.ones((1, p.n))).items()}
    boot = statistics(evaluator, p, example_weights(p.n, draws, rng))
    out = {}
    for key, value in point.items():
        base = key if key in BOUNDS else key.rpartition("/")[0]  # eval/cond_acc/<label>
        lo, hi = bias_corrected(value, boot[key], confidence,
                                BOUNDS.get(base, (-np.inf, np.inf)))
        out[key] = {"value": value, "lo": lo, "hi": hi}
    return out
