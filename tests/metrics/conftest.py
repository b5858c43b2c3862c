"""Tiny synthetic preprocessed datasets (shards + manifest) built in the test, never real data."""

from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq
import pytest

from audiogan import cli, storage
from audiogan.config import DataConfig
from audiogan.data import scaling, shards

SPLITS = ("train", "validation", "test")


def spec_examples(labels: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """One frequency band per class, random onset, noise: raw log magnitudes [N, 128, 128]."""
    x = -6.0 + 0.3 * rng.standard_normal((len(labels), 128, 128))
    for i, c in enumerate(labels):
        t0 = int(rng.integers(10, 50))
        x[i, t0:t0 + 60, 8 + 24 * c: 20 + 24 * c] += 5.0
    return x.astype(np.float32)


def note_examples(clusters: Sequence[int], rng: np.random.Generator, window: int = 256
                  ) -> np.ndarray:
    """Cluster c: pitches around 36 + 12c, its own typical step: raw notes [N, window, 3]."""
    out = np.zeros((len(clusters), window, 3), np.float32)
    for i, c in enumerate(clusters):
        out[i, :, 0] = np.clip(np.rint(36 + 12 * c + rng.normal(0, 2, window)), 21, 108)
        out[i, :, 1] = rng.exponential(0.05 * (c + 1), window)
        out[i, :, 2] = rng.exponential(0.2 * (c + 1), window) + 0.01
    return out


def write_dataset(root: str, kind: str, split_examples: dict[str, tuple[np.ndarray, list[str]]],
                  names: dict[str, list[str]] | None = None) -> dict:
    """`names`: per split, each example's source file name (default `<split>/<i>.src`)."""
    keys, splits, labels, xs = [], [], [], []
    for split, (x, labs) in split_examples.items():
        for i in range(len(x)):
            keys.append(f"{names[split][i] if names else f'{split}/{i:05d}.src'}#0")
            splits.append(split)
            labels.append(labs[i])
        xs.append(x)
    table = shards.make_table(keys, splits, labels, np.concatenate(xs))
    os.makedirs(os.path.join(root, shards.SHARDS), exist_ok=True)
    pq.write_table(table, os.path.join(root, shards.SHARDS, "part-00000.parquet"))
    train = split_examples["train"][0].astype(np.float64)
    manifest = {
        "schema_version": shards.SCHEMA_VERSION, "kind": kind, "dataset": "synthetic",
        "example_shape": list(train.shape[1:]),
        "counts": {s: int(len(split_examples.get(s, ([], []))[0])) for s in SPLITS},
        "files": {s: 1 for s in SPLITS}, "labels": sorted(set(labels)),
        "label_counts": {s: dict(Counter(lab for lab, sp in zip(labels, splits) if sp == s))
                         for s in SPLITS},
        "params": {}, "repaired": {}, "rejected": {}, "source_fingerprint": "test",
        "versions": {}, "created": "test",
    }
    if kind == "notes":
        manifest["note_scaling"] = scaling.note_constants(DataConfig())
    else:
        manifest["normalisation"] = {"mean": train.mean((0, 1)).tolist(),
                                     "std": (train.std((0, 1)) + 1e-6).tolist(), "clip_std": 3.0}
    storage.write_json_atomic(os.path.join(root, shards.MANIFEST), manifest)
    return manifest


@pytest.fixture(scope="session")
def spec_data(tmp_path_factory) -> str:
    """3 'digits', 60/15/15 per class."""
    rng = np.random.default_rng(0)
    root = str(tmp_path_factory.mktemp("spec"))
    parts = {}
    for split, per in (("train", 60), ("validation", 15), ("test", 15)):
        labs = [c for c in range(3) for _ in range(per)]
        parts[split] = (spec_examples(labs, rng), [str(c) for c in labs])
    write_dataset(root, "spectrogram", parts)
    return root


@pytest.fixture(scope="session")
def note_data(tmp_path_factory) -> str:
    """4 note clusters, 50/20/20 windows per cluster."""
    rng = np.random.default_rng(1)
    root = str(tmp_path_factory.mktemp("notes"))
    parts = {}
    for split, per in (("train", 50), ("validation", 20), ("test", 20)):
        cl = [c for c in range(4) for _ in range(per)]
        parts[split] = (note_examples(cl, rng), [""] * len(cl))
    write_dataset(root, "notes", parts)
    return root


@pytest.fixture(scope="session")
def classifier_dir(spec_data, tmp_path_factory) -> str:
    """The robust digit classifier of `spec_data` (round-trip augmented), trained once."""
    out = str(tmp_path_factory.mktemp("clf"))
    assert cli.main(["classifier", "train", "--data", spec_data, "--out", out,
                     "--epochs", "2"]) == 0
    return out
