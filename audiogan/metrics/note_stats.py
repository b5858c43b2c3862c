"""Note-statistic overlap (after Yang & Lerch 2018) between generated and real windows.

For each of four statistics we pool every note of a sample set into a fixed-bin histogram,
normalise it to a probability mass, and take the overlapping area sum(min(p, q)) with the
real validation windows' histogram: 1 = identical distributions, 0 = disjoint.

- pitch class: 12 bins; pitch: one bin per MIDI number 21..108 (rounded, clamped);
- step and duration (seconds): one bin for exactly 0 (chords start together) and 24
  log-spaced bins from 1 ms to 8 s (clipped), since musical times are roughly log-normal.

`eval/note_overlap` is the mean of the four. Pooled histograms (rather than Yang & Lerch's
KDE of pairwise feature distances) keep the cost linear in the number of notes.

`pitch_class_entropy` (`eval/pc_entropy`): per window (a phrase of `window` notes) the
Shannon entropy in bits of its note-count pitch-class histogram, averaged over windows
(0 = one pitch class, log2 12 = 3.58 = all twelve equally; tonal music sits in between).
"""

from __future__ import annotations

import numpy as np

PITCH_MIN, PITCH_MAX = 21, 108
TIME_EDGES = np.concatenate([[0.0, 1e-6], np.geomspace(1e-3, 8.0, 24)[1:], [np.inf]])
STATS = ("pitch_class", "pitch", "step", "duration")


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts.astype(np.float64)


def histograms(notes: np.ndarray) -> dict[str, np.ndarray]:
    """notes: [..., 3] raw (pitch, step_s, duration_s) -> normalised histograms per stat."""
    flat = np.asarray(notes, np.float64).reshape(-1, 3)
    pitch = np.clip(np.rint(flat[:, 0]), PITCH_MIN, PITCH_MAX).astype(np.int64)
    return {
        "pitch_class": _normalised(np.bincount(pitch % 12, minlength=12).astype(np.float64)),
        "pitch": _normalised(np.bincount(pitch - PITCH_MIN,
                                         minlength=PITCH_MAX - PITCH_MIN + 1).astype(np.float64)),
        "step": _normalised(np.histogram(np.clip(flat[:, 1], 0, 8.0), TIME_EDGES)[0]
                            .astype(np.float64)),
        "duration": _normalised(np.histogram(np.clip(flat[:, 2], 0, 8.0), TIME_EDGES)[0]
                                .astype(np.float64)),
    }


def window_counts(notes: np.ndarray) -> dict[str, np.ndarray]:
    """notes: [N, window, 3] raw -> per window, the note counts of each statistic's bins
    ([N, bins]); their sum over windows, normalised, is `histograms` (bootstrap pieces)."""
    x = np.asarray(notes, np.float64)
    n = len(x)
    pitch = np.clip(np.rint(x[..., 0]), PITCH_MIN, PITCH_MAX).astype(np.int64)
    rows = np.repeat(np.arange(n), x.shape[1]) if n else np.zeros(0, np.int64)

    def count(index: np.ndarray, bins: int) -> np.ndarray:
        out = np.zeros((n, bins))
        np.add.at(out, (rows, index.ravel()), 1.0)
        return out

    def times(t: np.ndarray) -> np.ndarray:
        # np.histogram's bins: [e_i, e_i+1), the last one closed.
        idx = np.clip(np.searchsorted(TIME_EDGES, np.clip(t, 0, 8.0), side="right") - 1,
                      0, len(TIME_EDGES) - 2)
        return count(idx, len(TIME_EDGES) - 1)

    return {"pitch_class": count(pitch % 12, 12),
            "pitch": count(pitch - PITCH_MIN, PITCH_MAX - PITCH_MIN + 1),
            "step": times(x[..., 1]), "duration": times(x[..., 2])}


def pitch_class_entropy_each(notes: np.ndarray) -> np.ndarray:
    """notes: [N, window, 3] raw -> per window, the pitch-class entropy in bits."""
    x = np.asarray(notes, np.float64)
    if x.size == 0:
        return np.zeros(0)
    pc = (np.clip(np.rint(x[..., 0]), PITCH_MIN, PITCH_MAX).astype(np.int64) % 12)
    counts = np.stack([np.bincount(row, minlength=12) for row in pc]).astype(np.float64)
    p = counts / counts.sum(1, keepdims=True)
    terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(1)


def pitch_class_entropy(notes: np.ndarray) -> float:
    """notes: [N, window, 3] raw -> mean over windows of the pitch-class entropy in bits."""
    each = pitch_class_entropy_each(notes)
    return float(each.mean()) if len(each) else float("nan")


def overlap(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.minimum(p, q).sum())


def overlaps(generated: np.ndarray, reference_hists: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-statistic overlapping areas and their mean under the key "mean"."""
    gen = histograms(generated)
    out = {name: overlap(gen[name], reference_hists[name]) for name in STATS}
    out["mean"] = float(np.mean([out[name] for name in STATS]))
    return out


def window_summary(notes: np.ndarray) -> np.ndarray:
    """[N, window, 3] raw notes -> [N, 43] per-window summary features for NDB.

    Order-invariant, so two windows of the same style land in the same bin even when
    shifted by a few notes: pitch-class mass (12), pitch mean/std/min/max scaled to about
    unit range (4), and step and duration mass over 12 coarse log bins each (24), plus the
    fraction of chord notes (step 0), and mean log step / log duration (3).
    """
    x = np.asarray(notes, np.float64)
    n = len(x)
    pitch = np.clip(np.rint(x[..., 0]), PITCH_MIN, PITCH_MAX)
    pc = np.zeros((n, 12))
    np.add.at(pc, (np.repeat(np.arange(n), x.shape[1]), (pitch % 12).astype(int).ravel()), 1.0)
    pc /= max(x.shape[1], 1)
    p_stats = np.stack([(pitch.mean(1) - 64.5) / 43.5, pitch.std(1) / 43.5,
                        (pitch.min(1) - 64.5) / 43.5, (pitch.max(1) - 64.5) / 43.5], 1)
    edges = np.concatenate([[0.0, 1e-6], np.geomspace(1e-3, 8.0, 12)[1:], [np.inf]])

    def time_mass(t: np.ndarray) -> np.ndarray:
        idx = np.clip(np.searchsorted(edges, np.clip(t, 0, 8.0), side="right") - 1, 0, 11)
        m = np.zeros((n, 12))
        np.add.at(m, (np.repeat(np.arange(n), t.shape[1]), idx.ravel()), 1.0)
        return m / max(t.shape[1], 1)

    logs = np.stack([(x[..., 1] <= 1e-6).mean(1),
                     np.log(x[..., 1] + 1e-3).mean(1) / 7.0,
                     np.log(x[..., 2] + 1e-3).mean(1) / 7.0], 1)
    return np.concatenate([pc, p_stats, time_mass(x[..., 1]), time_mass(x[..., 2]), logs],
                          1).astype(np.float32)
