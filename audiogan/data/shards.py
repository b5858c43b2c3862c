"""The shard contract between preprocessing, training, evaluation and sampling.

A preprocessed dataset directory (local path or URI) holds:
  shards/*.parquet   one row per example: key, split, label, x (raw float32, flattened)
  manifest.json      written last and atomically; its presence means "complete"
  rejects.jsonl      one JSON object per rejected source file: {"path", "reason"}

`x` is stored raw (notes in seconds and MIDI numbers, [window, 3]; spectrograms as log
magnitudes, [frames, bins], or -- `representation: complex` -- as the raw STFT's real and
imaginary parts, [2, frames, bins]); scaling, compression and normalisation are applied
on load, from the manifest, so one set of shards serves any scaling constants.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audiogan import storage
from audiogan.data import complex_spec, scaling
from audiogan.errors import UserError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REJECTS = "rejects.jsonl"
SHARDS = "shards"
SPLITS = ("train", "validation", "test")


def make_table(keys: Sequence[str], splits: Sequence[str], labels: Sequence[str],
               xs: np.ndarray) -> pa.Table:
    """Rows for the shard files; `xs` is [N, *example_shape] float32."""
    xs = np.ascontiguousarray(xs, dtype=np.float32)
    n = len(keys)
    width = int(np.prod(xs.shape[1:])) if n else 0
    flat = pa.array(xs.reshape(-1), type=pa.float32())
    x_col = pa.FixedSizeListArray.from_arrays(flat, width) if n else pa.array(
        [], type=pa.list_(pa.float32(), 1))
    return pa.table({
        "key": pa.array(list(keys), type=pa.string()),
        "split": pa.array(list(splits), type=pa.string()),
        "label": pa.array(list(labels), type=pa.string()),
        "x": x_col,
    })


def read_manifest(data: str) -> dict[str, Any]:
    path = storage.join(data, MANIFEST)
    if not storage.exists(path):
        raise UserError(f"no {MANIFEST} in '{data}': run `audiogan preprocess` first "
                        "(a directory without one is incomplete)")
    try:
        manifest = storage.read_json(path)
    except (ValueError, OSError) as exc:
        raise UserError(f"unreadable {MANIFEST} in '{data}': {exc}") from exc
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"'{data}' has shard schema {manifest.get('schema_version')}, "
                        f"this audiogan reads {SCHEMA_VERSION}: preprocess again")
    return manifest


def manifest_hash(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def shard_files(data: str) -> list[str]:
    fs, root = storage.resolve(storage.join(data, SHARDS))
    from pyarrow.fs import FileSelector, FileType

    infos = fs.get_file_info(FileSelector(root, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == FileType.File and i.path.endswith(".parquet"))


@dataclasses.dataclass
class Examples:
    x: np.ndarray          # [N, C, ...] float32, scaled for the networks when scaled=True
    labels: list[str]
    keys: list[str]


def load_split(data: str, split: str, rank: int = 0, world_size: int = 1, scaled: bool = True,
               manifest: dict[str, Any] | None = None) -> Examples:
    """One split, this rank's part (rows i with i % world_size == rank, by sorted key).

    Returned in network layout: notes [N, 3, window]; spectrograms [N, C, frames, bins]
    (C = 1 for log magnitudes, 2 for complex).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    manifest = manifest or read_manifest(data)
    fs, _ = storage.resolve(data)
    tables = []
    for f in shard_files(data):
        t = storage.retrying("read", storage.join(data, SHARDS, f.rsplit("/", 1)[-1]),
                             lambda f=f: pq.read_table(f, filesystem=fs,
                                                       columns=["key", "split", "label", "x"],
                                                       filters=[("split", "=", split)]))
        if t.num_rows:
            tables.append(t)
    shape = tuple(manifest["example_shape"])
    if not tables:
        return Examples(np.zeros((0, *_network_shape(manifest["kind"], shape)), np.float32), [], [])
    table = pa.concat_tables(tables).sort_by("key")
    idx = np.arange(rank, table.num_rows, world_size)
    table = table.take(pa.array(idx))
    flat = table.column("x").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    raw = flat.astype(np.float32, copy=False).reshape(table.num_rows, *shape)
    x = to_network(raw, manifest) if scaled else raw
    return Examples(x=np.ascontiguousarray(x, dtype=np.float32),
                    labels=table.column("label").to_pylist(), keys=table.column("key").to_pylist())


def _network_shape(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind == "notes":
        return (shape[1], shape[0])
    return shape if len(shape) == 3 else (1, *shape)


def is_complex(manifest_or_meta: dict[str, Any]) -> bool:
    return complex_spec.representation(manifest_or_meta) == complex_spec.REPRESENTATION


def to_network(raw: np.ndarray, manifest: dict[str, Any]) -> np.ndarray:
    """Raw examples -> scaled network layout, with the manifest's constants."""
    if manifest["kind"] == "notes":
        return np.swapaxes(scaling.scale_notes(raw, manifest["note_scaling"]), -1, -2)
    if is_complex(manifest):
        return complex_spec.normalise(raw, manifest["normalisation"])
    norm = manifest["normalisation"]
    mean, std = np.asarray(norm["mean"]), np.asarray(norm["std"])
    return scaling.normalise_spec(raw, mean, std, norm["clip_std"])[:, None]


def scaled_notes(x: np.ndarray, manifest_or_meta: dict[str, Any]) -> np.ndarray:
    """Notes in the network layout -> scaled [N, 3, window]: a one-hot pitch generator's
    [N, keys + 2, window] is decoded by argmax (audiogan.pitch); [N, 3, window] is kept."""
    if np.shape(x)[1] == len(scaling.NOTE_FIELDS):
        return np.asarray(x)
    from audiogan.pitch import OneHotPitch  # torch: not for the data-only paths

    return OneHotPitch.from_scaling(manifest_or_meta["note_scaling"]).decode(x)


def from_network(x: np.ndarray, manifest_or_meta: dict[str, Any]) -> np.ndarray:
    """Network output -> raw examples (notes [N, window, 3]; log magnitudes [N, frames, bins];
    complex [N, 2, frames, bins])."""
    m = manifest_or_meta
    if m["kind"] == "notes":
        return scaling.unscale_notes(np.swapaxes(scaled_notes(x, m), -1, -2), m["note_scaling"])
    if is_complex(m):
        return complex_spec.denormalise(np.asarray(x), m["normalisation"])
    norm = m["normalisation"]
    return scaling.denormalise_spec(np.asarray(x)[:, 0], np.asarray(norm["mean"]),
                                    np.asarray(norm["std"]), norm["clip_std"])
