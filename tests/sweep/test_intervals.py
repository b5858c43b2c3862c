"""Bootstrap intervals of the final evaluation (audiogan.metrics.intervals): coverage in a
simulation where the true value is known, and the resampled metrics agreeing exactly with
the evaluator's own scores."""

from __future__ import annotations

import types

import numpy as np
import pytest

from audiogan.metrics import intervals, registry
from audiogan.metrics.ndb import NDB, two_proportion_different

K, N, N_TRAIN = 20, 400, 10**6
REPS, DRAWS = 150, 300


def _evaluator(p: np.ndarray) -> types.SimpleNamespace:
    """The parts of an Evaluator the bootstrap reads: NDB bins with known training shares."""
    ndb = NDB(centres=np.zeros((K, 1), np.float32), train_proportions=p, n_train=N_TRAIN)
    return types.SimpleNamespace(ndb=ndb, metrics=[registry.get(m) for m in
                                                   ("eval/ndb", "eval/ndb_js", "eval/nn_train")])


def _expected(p: np.ndarray, q: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """The metrics' expected values for N examples of a generator with bin shares q
    (Monte Carlo over fresh sample sets)."""
    props = rng.multinomial(N, q, size=20000) / N
    return {"eval/ndb": float(two_proportion_different(props, N, p, N_TRAIN).mean()),
            "eval/ndb_js": float(intervals._js_rows(props, p).mean()),
            "eval/nn_train": 1.0}  # the mean of the per-example exponential draws below


def _simulate(p: np.ndarray, q: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    truth = _expected(p, q, rng)
    ev = _evaluator(p)
    hits = {key: 0 for key in truth}
    plain_js = 0
    for rep in range(REPS):
        pieces = intervals.Pieces(n=N, assign=rng.choice(K, N, p=q),
                                  nn_train=rng.exponential(1.0, N))
        out = intervals.intervals(ev, pieces, draws=DRAWS, confidence=0.95, seed=rep)
        for key, value in truth.items():
            hits[key] += out[key]["lo"] <= value <= out[key]["hi"]
        # The plain percentile interval, for contrast.
        boot = intervals.statistics(ev, pieces, intervals.example_weights(
            N, DRAWS, np.random.default_rng(rep)))["eval/ndb_js"]
        lo, hi = np.quantile(boot, [0.025, 0.975])
        plain_js += lo <= truth["eval/ndb_js"] <= hi
    return {"coverage": {k: v / REPS for k, v in hits.items()}, "plain_js": plain_js / REPS,
            "truth": truth}


@pytest.mark.parametrize("shift", [0.0, 0.35], ids=["matching generator", "shifted generator"])
def test_bootstrap_intervals_cover_the_true_value_at_about_their_nominal_rate(shift):
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.full(K, 5.0))
    q = p * np.exp(rng.normal(0.0, shift, K))
    result = _simulate(p, q / q.sum(), seed=11)
    for key, rate in result["coverage"].items():
        # Nominal 0.95; with 150 repetitions the rate's own 95% band is about +-0.035, and
        # the bias-corrected interval of a histogram metric may be conservative.
        assert 0.9 <= rate <= 1.0, (key, rate, result)
    if shift == 0.0:
        # Why the percentile interval is shifted back by the bootstrap's bias estimate: the
        # plain one sits above the plug-in JS divergence's expected value and misses it.
        assert result["plain_js"] < 0.5, result


def test_resampled_metrics_equal_the_evaluators_scores(notes_data):
    from audiogan.data import shards
    from audiogan.metrics.evaluator import build_evaluator

    manifest = shards.read_manifest(notes_data)
    ev = build_evaluator(notes_data, manifest, n_samples=16, ndb_k=4, eval_seed=5,
                         latent_dim=8, keep_floor=True)
    assert ev.floor_x is not None and len(ev.floor_x) == 8
    x = shards.load_split(notes_data, "train", manifest=manifest).x[:16]
    for examples, scores in ((x, ev.score(x)), (ev.floor_x, ev.floor)):
        pieces = intervals.pieces(ev, examples)
        ones = intervals.statistics(ev, pieces, np.ones((1, len(examples))))
        assert set(ones) == set(scores)
        for key, value in scores.items():  # (nn_train is float32 arithmetic in both)
            assert ones[key][0] == pytest.approx(value, rel=1e-6, abs=1e-12), key
        out = intervals.intervals(ev, pieces, draws=200, seed=1)
        for key, rec in out.items():
            assert rec["value"] == pytest.approx(scores[key], rel=1e-6, abs=1e-12)
            assert rec["lo"] <= rec["hi"], key
