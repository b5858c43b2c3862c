"""Streaming per-bin mean and standard deviation (Chan et al.'s parallel update).

Log magnitudes reach about -14 (the 1e-6 floor); a naive sum of squares would lose
digits, so batches are merged as (count, mean, M2).
"""

from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-6  # a constant bin (e.g. all padding) must not divide by zero


class BinStats:
    def __init__(self, n_bins: int) -> None:
        self.n = 0
        self.mean = np.zeros(n_bins)
        self.m2 = np.zeros(n_bins)

    def add(self, rows: np.ndarray) -> None:
        """rows: [k, n_bins] values (every frame of every example is one row)."""
        rows = np.asarray(rows, dtype=np.float64)
        k = len(rows)
        if not k:
            return
        mean_b = rows.mean(axis=0)
        m2_b = ((rows - mean_b) ** 2).sum(axis=0)
        total = self.n + k
        delta = mean_b - self.mean
        self.mean = self.mean + delta * k / total
        self.m2 = self.m2 + m2_b + delta ** 2 * self.n * k / total
        self.n = total

    def std(self) -> np.ndarray:
        return np.maximum(np.sqrt(self.m2 / max(self.n, 1)), STD_FLOOR)

    def normalisation(self, clip_std: float) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std().tolist(),
                "clip_std": float(clip_std), "n_frames": int(self.n)}
