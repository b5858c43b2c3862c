"""Reusable tiny preprocessed datasets (shards + manifest written directly), never real data.

    from tests.fixtures import make_dataset
    data = make_dataset(tmp_path / "piano", "notes", n_train=16)
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq

from audiogan import storage
from audiogan.config import DataConfig
from audiogan.data import scaling, shards


def _notes(rng: np.random.Generator, n: int, window: int) -> np.ndarray:
    out = np.zeros((n, window, 3), np.float32)
    out[..., 0] = rng.integers(40, 90, (n, window))
    out[..., 1] = rng.exponential(0.1, (n, window))
    out[..., 2] = rng.exponential(0.3, (n, window)) + 0.01
    return out


def _spectrograms(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    x = -6.0 + 0.5 * rng.standard_normal((n, size, size))
    for i in range(n):  # a band per example so the data are not pure noise
        lo = int(rng.integers(0, size - 16))
        x[i, :, lo:lo + 16] += 4.0
    return x.astype(np.float32)


def make_dataset(root: Any, kind: str = "notes", n_train: int = 16, n_validation: int = 4,
                 n_test: int = 4, seed: int = 0, window: int = 256, size: int = 128,
                 n_files: int = 2, labels: Sequence[str] | None = None,
                 label_counts: bool = True, dataset: str = "synthetic") -> str:
    """Write a preprocessed dataset of `kind` ("notes" | "spectrogram") under `root`; returns it.

    Example i gets `labels[i % len(labels)]` (default: digit i % 10 for spectrograms, ""
    for notes). `label_counts=False` writes a manifest from before per-label counts."""
    root = str(root)
    rng = np.random.default_rng(seed)
    counts = {"train": n_train, "validation": n_validation, "test": n_test}
    total = sum(counts.values())
    xs = _notes(rng, total, window) if kind == "notes" else _spectrograms(rng, total, size)
    splits = [s for s, c in counts.items() for _ in range(c)]
    if labels is None:
        labels = [str(i % 10) if kind == "spectrogram" else "" for i in range(total)]
    labels = [labels[i % len(labels)] for i in range(total)]
    keys = [f"src/{s}/{i:05d}.x#0" for i, s in enumerate(splits)]
    os.makedirs(os.path.join(root, shards.SHARDS), exist_ok=True)
    for f in range(n_files):
        idx = list(range(f, total, n_files))
        table = shards.make_table([keys[i] for i in idx], [splits[i] for i in idx],
                                  [labels[i] for i in idx], xs[idx])
        pq.write_table(table, os.path.join(root, shards.SHARDS, f"part-{f:05d}.parquet"))
    manifest: dict[str, Any] = {
        "schema_version": shards.SCHEMA_VERSION, "kind": kind, "dataset": dataset,
        "example_shape": [window, 3] if kind == "notes" else [size, size],
        "counts": counts, "files": {s: n_files for s in counts},
        "labels": sorted(set(labels)), "params": {}, "repaired": {}, "rejected": {},
        "source_fingerprint": "test", "versions": {}, "created": "test",
    }
    if label_counts:
        manifest["label_counts"] = {s: dict(Counter(lab for lab, sp in zip(labels, splits)
                                                     if sp == s)) for s in counts}
    if kind == "notes":
        manifest["note_scaling"] = scaling.note_constants(DataConfig())
    else:
        train = xs[:n_train].astype(np.float64)
        manifest["normalisation"] = {"mean": train.mean(axis=(0, 1)).tolist(),
                                     "std": (train.std(axis=(0, 1)) + 1e-3).tolist(),
                                     "clip_std": 3.0}
    storage.write_json_atomic(os.path.join(root, shards.MANIFEST), manifest)
    return root
