import numpy as np
import pyarrow.parquet as pq
import pytest

from audiogan import storage
from audiogan.config import DataConfig
from audiogan.data import scaling, shards
from audiogan.errors import UserError

C = scaling.note_constants(DataConfig())


def test_note_scaling_round_trip_exact_for_unclipped_values():
    rng = np.random.default_rng(0)
    raw = np.stack([rng.integers(21, 109, 500), rng.uniform(0, 7.9, 500),
                    rng.uniform(0, 7.9, 500)], -1).astype(np.float64)
    s = scaling.scale_notes(raw, C)
    assert s.min() >= -1 and s.max() <= 1
    back = scaling.unscale_notes(s, C)
    assert np.array_equal(back[:, 0], raw[:, 0])
    np.testing.assert_allclose(back[:, 1:], raw[:, 1:], atol=2e-5, rtol=2e-6)  # float32 storage


def test_note_scaling_endpoints_and_clip():
    s = scaling.scale_notes(np.array([[21, 0.0, 8.0], [108, 20.0, 0.0]]), C)
    np.testing.assert_allclose(s, [[-1, -1, 1], [1, 1, -1]], atol=1e-6)


def test_spec_normalise_round_trip_inside_clip():
    rng = np.random.default_rng(1)
    mean, std = rng.normal(size=128), rng.uniform(0.5, 2, size=128)
    x = mean + std * rng.uniform(-2.9, 2.9, size=(4, 128, 128))
    back = scaling.denormalise_spec(scaling.normalise_spec(x, mean, std), mean, std)
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)


def _write(tmp_path, kind, shape, n=10):
    rng = np.random.default_rng(2)
    if kind == "notes":
        xs = np.stack([rng.integers(21, 109, (n, shape[0])), rng.uniform(0, 1, (n, shape[0])),
                       rng.uniform(0, 1, (n, shape[0]))], -1)
        extra = {"note_scaling": C}
    else:
        xs = rng.normal(size=(n, *shape))
        extra = {"normalisation": {"mean": [0.0] * shape[1], "std": [1.0] * shape[1],
                                   "clip_std": 3.0}}
    keys = [f"f{i:02d}.x#0" for i in range(n)]
    splits = ["train"] * (n - 2) + ["test"] * 2
    table = shards.make_table(keys, splits, [str(i % 10) for i in range(n)], xs)
    (tmp_path / "shards").mkdir()
    pq.write_table(table, tmp_path / "shards" / "part-0.parquet")
    manifest = {"schema_version": shards.SCHEMA_VERSION, "kind": kind, "example_shape": list(shape),
                **extra}
    storage.write_json_atomic(str(tmp_path / shards.MANIFEST), manifest)
    return xs.astype(np.float32)


def test_load_split_layout_and_rank_partition(tmp_path):
    xs = _write(tmp_path, "notes", (256, 3))
    ex = shards.load_split(str(tmp_path), "train")
    assert ex.x.shape == (8, 3, 256) and ex.x.dtype == np.float32
    raw = shards.load_split(str(tmp_path), "train", scaled=False)
    np.testing.assert_array_equal(raw.x, xs[:8])
    r0 = shards.load_split(str(tmp_path), "train", rank=0, world_size=2)
    r1 = shards.load_split(str(tmp_path), "train", rank=1, world_size=2)
    assert set(r0.keys).isdisjoint(r1.keys) and len(r0.keys) + len(r1.keys) == 8
    assert shards.load_split(str(tmp_path), "test").x.shape[0] == 2


def test_spectrogram_layout(tmp_path):
    _write(tmp_path, "spectrogram", (8, 8))
    assert shards.load_split(str(tmp_path), "train").x.shape == (8, 1, 8, 8)


def test_missing_manifest_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="preprocess"):
        shards.read_manifest(str(tmp_path))
