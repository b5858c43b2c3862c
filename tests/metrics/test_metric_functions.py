"""Analytic behaviour of the metric functions on synthetic features."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audiogan.metrics import inception, ndb, nn, note_stats


def _mixture(n: int, modes: int, rng: np.random.Generator, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(0, 10, (modes, dim))
    label = rng.integers(0, modes, n)
    return centres[label] + rng.normal(0, 1, (n, dim)), label


def test_two_proportion_z_test_matches_hand_computation():
    # pooled 0.4, se = sqrt(0.24 * 0.02) = 0.0693, z = 2.89 > 1.96; 0.33 vs 0.3 gives z = 0.45.
    diff = ndb.two_proportion_different(np.array([0.5, 0.33, 0.0]), 100,
                                        np.array([0.3, 0.30, 0.0]), 100)
    assert diff.tolist() == [True, False, False]


def test_js_divergence_bounds():
    p = np.array([0.2, 0.3, 0.5])
    assert ndb.js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert ndb.js_divergence([1, 0], [0, 1]) == pytest.approx(math.log(2))


def test_ndb_two_halves_of_same_data_near_zero_and_missing_mode_high():
    rng = np.random.default_rng(0)
    x, label = _mixture(8000, 5, rng)
    train, half = x[:4000], x[4000:6000]
    bins = ndb.NDB.fit(train, k=10, seed=0)
    same = bins(half)
    # Same distribution: only z-test false positives (5% expected per bin).
    assert same["ndb"] <= 0.2
    assert same["ndb_js"] < 0.01
    # One of five modes missing: its bins empty, all others over-full.
    rest = x[6000:][label[6000:] != 0][:2000]
    missing = bins(rest)
    assert missing["ndb"] >= 0.6
    assert missing["ndb_js"] > 10 * same["ndb_js"]
    # Complete collapse onto one point.
    assert bins(np.repeat(x[:1], 2000, 0))["ndb"] >= 0.9


def test_inception_score_analytic():
    k = 5
    confident = np.full((k * 40, k), 1e-9)
    confident[np.arange(k * 40), np.arange(k * 40) % k] = 1.0
    confident /= confident.sum(1, keepdims=True)
    assert inception.inception_score_from_probs(confident) == pytest.approx(k, rel=1e-4)
    collapsed = np.tile(confident[:1], (200, 1))
    assert inception.inception_score_from_probs(collapsed) == pytest.approx(1.0, abs=1e-9)
    uniform = np.full((100, k), 1.0 / k)
    assert inception.inception_score_from_probs(uniform) == pytest.approx(1.0, abs=1e-9)


def test_note_overlap_identical_is_one_and_disjoint_pitch_is_zero():
    rng = np.random.default_rng(0)
    notes = np.stack([rng.integers(40, 80, (10, 256)), rng.exponential(0.1, (10, 256)),
                      rng.exponential(0.3, (10, 256))], -1)
    ref = note_stats.histograms(notes)
    same = note_stats.overlaps(notes.copy(), ref)
    assert all(same[s] == pytest.approx(1.0) for s in (*note_stats.STATS, "mean"))
    shifted = notes.copy()
    shifted[..., 0] += 40  # 80..119 clamps to <= 108: no pitch in common with 40..79
    out = note_stats.overlaps(shifted, ref)
    assert out["pitch"] == 0.0
    assert out["step"] == pytest.approx(1.0) and out["duration"] == pytest.approx(1.0)


def test_window_summary_is_order_invariant_and_finite():
    rng = np.random.default_rng(0)
    notes = np.stack([rng.integers(21, 109, (3, 256)), rng.exponential(0.1, (3, 256)),
                      rng.exponential(0.3, (3, 256))], -1)
    f = note_stats.window_summary(notes)
    g = note_stats.window_summary(notes[:, ::-1])
    assert f.shape == (3, 43) and np.isfinite(f).all()
    np.testing.assert_allclose(f, g, atol=1e-6)


def test_nearest_neighbour_metrics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 32))
    copies = np.concatenate([x, x])
    assert nn.nn_self(copies) == pytest.approx(0.0, abs=1e-7)
    assert nn.nn_self(x) > 0.5
    assert nn.nn_to(x, copies) == pytest.approx(0.0, abs=1e-3)
    # RMS per element: a constant offset of 0.5 everywhere is at distance 0.5.
    assert nn.nn_to(x + 0.5, x) == pytest.approx(0.5, abs=1e-4)


def test_pitch_class_entropy_analytic():
    rng = np.random.default_rng(0)
    times = np.stack([rng.exponential(0.1, (2, 240)), rng.exponential(0.3, (2, 240))], -1)

    def windows(pitches: np.ndarray) -> np.ndarray:
        return np.concatenate([pitches[..., None].astype(np.float64), times], -1)

    # Every pitch class equally often (20 each, over several octaves): log2 12 bits.
    all_twelve = np.tile(np.arange(36, 72), (2, 7))[:, :240].copy()
    assert note_stats.pitch_class_entropy(windows(all_twelve)) == pytest.approx(math.log2(12))
    # One pitch class (C in four octaves): 0 bits; two classes half and half: 1 bit.
    assert note_stats.pitch_class_entropy(windows(np.tile([48, 60, 72, 84], (2, 60)))) == 0.0
    assert note_stats.pitch_class_entropy(windows(np.tile([60, 67], (2, 120)))) == \
        pytest.approx(1.0)
    # The mean over windows: one window of each gives the mean of 0 and 1 bit.
    mixed = np.stack([np.full(240, 60), np.tile([60, 67], 120)])
    assert note_stats.pitch_class_entropy(windows(mixed)) == pytest.approx(0.5)
