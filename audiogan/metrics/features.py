"""Feature maps the metrics compare samples in (one choice per data kind, used everywhere).

Spectrograms: the normalised [1, 128, 128] network input average-pooled 4x4 to 32x32 and
flattened (1,024 values in [-1, 1]): cheap, keeps the coarse time-frequency shape that
tells digits apart, and drops pixel noise that would dominate distances at full size.

Notes: NDB bins use an order-invariant per-window summary of the raw notes
(`note_stats.window_summary`, 43 values: pitch-class mass, pitch range, step and duration
distributions), because k-means on flattened 256-note sequences would bin windows by
where in the window their notes fall rather than by what they play. The nearest-neighbour
metrics use the scaled [3, 256] windows flattened (768 values): memorisation means copying
a training window note for note, and that is what a small distance there shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from audiogan.data import shards
from audiogan.metrics import note_stats

SPEC_POOL = 4


def spectrogram_features(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """[N, 1, frames, bins] normalised -> [N, (frames/4) * (bins/4)] float32."""
    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    out = []
    for i in range(0, len(t), 1024):  # bounded memory for large splits
        out.append(F.avg_pool2d(t[i:i + 1024], SPEC_POOL).flatten(1))
    return torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)


def ndb_features(x_network: np.ndarray, manifest: dict[str, Any]) -> np.ndarray:
    if manifest["kind"] == "notes":
        return note_stats.window_summary(shards.from_network(x_network, manifest))
    return spectrogram_features(x_network)


def nn_features(x_network: np.ndarray, manifest: dict[str, Any]) -> np.ndarray:
    if manifest["kind"] == "notes":
        x = shards.scaled_notes(x_network, manifest)
        return np.asarray(x, np.float32).reshape(len(x), -1)
    return spectrogram_features(x_network)
