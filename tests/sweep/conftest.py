"""One tiny notes dataset and ONE small smoke sweep shared by the sweep tests."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from audiogan import storage
from audiogan.config import DataConfig
from audiogan.data import scaling, shards

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(REPO, "sweeps", "pianogan-smoke.yaml")


def write_notes_dataset(root: str, n_train: int = 24, n_val: int = 8, seed: int = 0) -> str:
    """Two note 'styles' (low/slow, high/fast) as raw [N, 256, 3] windows + manifest."""
    rng = np.random.default_rng(seed)
    keys, splits, labels, xs = [], [], [], []
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_val)):
        for i in range(n):
            c = i % 2
            x = np.zeros((256, 3), np.float32)
            x[:, 0] = np.clip(np.rint(48 + 24 * c + rng.normal(0, 3, 256)), 21, 108)
            x[:, 1] = rng.exponential(0.05 * (c + 1), 256)
            x[:, 2] = rng.exponential(0.2 * (c + 1), 256) + 0.01
            keys.append(f"{split}/{i:04d}.mid#0")
            splits.append(split)
            labels.append("")
            xs.append(x)
    os.makedirs(os.path.join(root, shards.SHARDS), exist_ok=True)
    pq.write_table(shards.make_table(keys, splits, labels, np.stack(xs)),
                   os.path.join(root, shards.SHARDS, "part-00000.parquet"))
    manifest = {
        "schema_version": shards.SCHEMA_VERSION, "kind": "notes", "dataset": "synthetic",
        "example_shape": [256, 3], "counts": {"train": n_train, "validation": n_val, "test": n_val},
        "files": {"train": 1, "validation": 1, "test": 1}, "labels": [""],
        "note_scaling": scaling.note_constants(DataConfig()), "params": {}, "repaired": {},
        "rejected": {}, "source_fingerprint": "test", "versions": {}, "created": "test",
    }
    storage.write_json_atomic(os.path.join(root, shards.MANIFEST), manifest)
    return root


@pytest.fixture(scope="session")
def notes_data(tmp_path_factory) -> str:
    return write_notes_dataset(str(tmp_path_factory.mktemp("notes")))
