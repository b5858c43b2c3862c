"""Number of statistically Different Bins (Richardson & Weiss 2018).

k-means partitions real training features into K bins; a sample set is assigned to the
nearest centre, and each bin's proportion is compared with the training proportion by a
two-proportion z-test (pooled proportion, two-sided, p = 0.05). `ndb` is the fraction of
bins that differ; `js` the Jensen-Shannon divergence (natural log, so in [0, ln 2]) of
the two bin histograms. A collapsed generator leaves bins empty or over-full: ndb rises.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch

log = logging.getLogger(__name__)

# Two-sided 5% critical value of the standard normal.
Z_CRIT_05 = 1.959963984540054


def nearest(x: np.ndarray, centres: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Index of the nearest centre (Euclidean) for each row of x, vectorised in torch."""
    c = torch.as_tensor(np.asarray(centres, np.float32))
    c_sq = (c * c).sum(1)
    out = []
    for i in range(0, len(x), chunk):
        xb = torch.as_tensor(np.asarray(x[i:i + chunk], np.float32))
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is constant per row, so drop it.
        d = c_sq.unsqueeze(0) - 2.0 * xb @ c.T
        out.append(d.argmin(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def bin_proportions(assign: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(assign, minlength=k).astype(np.float64) / max(len(assign), 1)


def two_proportion_different(p1: np.ndarray, n1: int, p2: np.ndarray, n2: int,
                             z_crit: float = Z_CRIT_05) -> np.ndarray:
    """Per-bin boolean: are proportions p1 (of n1) and p2 (of n2) different at the level?"""
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p1 - p2) / np.where(se > 0, se, 1.0), 0.0)
    return np.abs(z) > z_crit


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    p = np.asarray(p, np.float64) / max(np.sum(p), 1e-300)
    q = np.asarray(q, np.float64) / max(np.sum(q), 1e-300)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / b[mask])))

    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


@dataclasses.dataclass
class NDB:
    """Bins fitted once on real training features; `__call__` scores any sample set."""

    centres: np.ndarray          # [K, D] float32
    train_proportions: np.ndarray  # [K]
    n_train: int

    @classmethod
    def fit(cls, train_features: np.ndarray, k: int, seed: int = 0, max_fit: int = 5000,
            n_init: int = 2) -> "NDB":
        """k-means on at most `max_fit` training rows (cost cap); proportions from all rows."""
        from sklearn.cluster import KMeans

        x = np.asarray(train_features, np.float32)
        if len(x) < k:
            raise ValueError(f"need at least K={k} real examples for NDB, got {len(x)}")
        rng = np.random.default_rng(seed)
        fit_rows = x if len(x) <= max_fit else x[rng.choice(len(x), max_fit, replace=False)]
        km = KMeans(n_clusters=k, n_init=n_init, max_iter=100, random_state=seed)
        km.fit(fit_rows)
        centres = km.cluster_centers_.astype(np.float32)
        props = bin_proportions(nearest(x, centres), k)
        return cls(centres=centres, train_proportions=props, n_train=len(x))

    @property
    def k(self) -> int:
        return len(self.centres)

    def proportions(self, features: np.ndarray) -> np.ndarray:
        return bin_proportions(nearest(features, self.centres), self.k)

    def __call__(self, features: np.ndarray) -> dict[str, float]:
        n = len(features)
        if n == 0:
            return {"ndb": math.nan, "ndb_js": math.nan}
        p = self.proportions(features)
        different = two_proportion_different(p, n, self.train_proportions, self.n_train)
        return {"ndb": float(different.mean()),
                "ndb_js": js_divergence(p, self.train_proportions)}
