"""Nearest-neighbour distances: diversity (`nn_self`) and memorisation (`nn_train`).

Distances are RMS per feature element (Euclidean / sqrt(D)), so values do not depend on
the feature size and read in the units of the scaled network data ([-1, 1]).
`nn_self`: mean over generated samples of the distance to the nearest *other* generated
sample (0 when every sample has an identical copy: collapse). `nn_train`: mean distance
from each generated sample to its nearest training sample (0 when it copies training data).
"""

from __future__ import annotations

import numpy as np
import torch


def _nearest_sq(a: torch.Tensor, b: torch.Tensor, exclude_self: bool, chunk: int = 1024
                ) -> torch.Tensor:
    """Squared Euclidean distance from each row of a to its nearest row of b."""
    b_sq = (b * b).sum(1)
    out = []
    for i in range(0, len(a), chunk):
        ab = a[i:i + chunk]
        d = (ab * ab).sum(1, keepdim=True) - 2.0 * ab @ b.T + b_sq.unsqueeze(0)
        if exclude_self:
            rows = torch.arange(len(ab))
            d[rows, rows + i] = float("inf")
        out.append(d.min(1).values.clamp_min(0.0))
    return torch.cat(out)


def _as_2d(x: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    # float64 by default: the |a|^2 - 2ab + |b|^2 expansion must give (almost exactly) 0 for
    # identical rows; float32 would leave ~1e-3 RMS of rounding noise.
    t = torch.as_tensor(np.asarray(x)).to(dtype)
    return t.reshape(len(t), -1)


def nn_self_each(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per sample: RMS distance to its nearest other sample (the bootstrap's pieces)."""
    x = _as_2d(features)
    if len(x) < 2:
        return np.full(len(x), np.nan)
    return (_nearest_sq(x, x, exclude_self=True).sqrt() / np.sqrt(x.shape[1])).numpy()


def nn_to_each(features: np.ndarray | torch.Tensor,
               reference: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per sample: RMS distance to its nearest reference row."""
    # float32 here: the reference (training set) is large, and copies are still ~1e-3 away.
    x, r = _as_2d(features, torch.float32), _as_2d(reference, torch.float32)
    if len(x) == 0 or len(r) == 0:
        return np.full(len(x), np.nan)
    return (_nearest_sq(x, r, exclude_self=False).sqrt() / np.sqrt(x.shape[1])).numpy()


def nn_self(features: np.ndarray | torch.Tensor) -> float:
    each = nn_self_each(features)
    return float(each.mean()) if len(each) >= 2 else float("nan")


def nn_to(features: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor) -> float:
    each = nn_to_each(features, reference)
    return float(each.mean()) if len(each) and np.isfinite(each).all() else float("nan")
