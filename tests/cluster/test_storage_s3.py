"""Shared storage through the real S3 client path, against a local moto server on 127.0.0.1.

The same assertions run on `file://` URIs and on `s3://bucket/...?endpoint_override=...`
URIs (pyarrow's S3FileSystem, AWS SDK underneath): JSON round trips, shard tables read back
by `shards.load_split`, and the CLI writing a preprocessed dataset into the bucket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest
from s3_server import BUCKET, S3_ENV, s3_client, s3_uri

from audiogan import storage
from audiogan.data import shards


@pytest.fixture(params=["file", "s3"])
def base(request, tmp_path) -> str:
    """A fresh dataset root: a file:// URI, or a fresh prefix in the moto bucket."""
    if request.param == "file":
        return f"file://{tmp_path}/store"
    return s3_uri(request.getfixturevalue("moto_endpoint"), f"t-{uuid.uuid4().hex[:8]}")


def test_join_keeps_uri_options_after_the_path():
    uri = "s3://b/root?endpoint_override=127.0.0.1:9&scheme=http"
    assert storage.join(uri, "shards", "a.parquet") == \
        "s3://b/root/shards/a.parquet?endpoint_override=127.0.0.1:9&scheme=http"
    assert storage.join("s3://b/root/", "/m.json") == "s3://b/root/m.json"


def test_json_round_trip_and_overwrite(base):
    path = storage.join(base, "sweep", "state.json")
    assert not storage.exists(path)
    obj = {"trial": [1, 2, 3], "metric": 0.125, "name": "é"}
    storage.write_json_atomic(path, obj)
    assert storage.exists(path)
    assert storage.read_json(path) == obj
    storage.write_json_atomic(path, {"v": 2})
    assert storage.read_json(path) == {"v": 2}
    assert storage.read_bytes(path).endswith(b"\n")


def test_s3_write_leaves_exactly_one_object(moto_endpoint):
    prefix = f"one-{uuid.uuid4().hex[:8]}"
    storage.write_json_atomic(storage.join(s3_uri(moto_endpoint, prefix), "a", "b.json"), [1])
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    assert [o["Key"] for o in listed["Contents"]] == [f"{prefix}/a/b.json"]


def _write_dataset(base: str, xs: np.ndarray, keys: list[str], splits: list[str]) -> dict:
    """Two shard files + manifest, as preprocessing lays them out."""
    manifest = {
        "schema_version": shards.SCHEMA_VERSION, "kind": "spectrogram", "dataset": "test",
        "example_shape": list(xs.shape[1:]),
        "counts": {s: splits.count(s) for s in shards.SPLITS},
        "normalisation": {"mean": [0.5] * xs.shape[2], "std": [2.0] * xs.shape[2],
                          "clip_std": 3.0},
        "labels": ["", "one"],
    }
    fs, _ = storage.resolve(base)
    storage.makedirs(storage.join(base, shards.SHARDS))
    half = len(keys) // 2
    for i, (lo, hi) in enumerate([(0, half), (half, len(keys))]):
        table = shards.make_table(keys[lo:hi], splits[lo:hi], ["one"] * (hi - lo), xs[lo:hi])
        _, path = storage.resolve(storage.join(base, shards.SHARDS, f"part-{i}.parquet"))
        pq.write_table(table, path, filesystem=fs)
    storage.write_json_atomic(storage.join(base, shards.MANIFEST), manifest)
    return manifest


def test_shards_round_trip_through_load_split(base):
    rng = np.random.default_rng(0)
    n = 10
    xs = rng.normal(size=(n, 4, 6)).astype(np.float32)
    keys = [f"clip{i:02d}.wav#0" for i in range(n)][::-1]        # stored out of key order
    splits = ["train" if i % 3 else "test" for i in range(n)]
    manifest = _write_dataset(base, xs, keys, splits)

    assert len(shards.shard_files(base)) == 2
    assert shards.read_manifest(base) == manifest
    want = sorted((k, x) for k, x, s in zip(keys, xs, splits) if s == "train")
    got = shards.load_split(base, "train", scaled=False)
    assert got.keys == [k for k, _ in want]
    np.testing.assert_array_equal(got.x, np.stack([x for _, x in want]))
    scaled = shards.load_split(base, "train")
    assert scaled.x.shape == (len(want), 1, 4, 6)
    np.testing.assert_array_equal(scaled.x, shards.to_network(got.x, manifest))
    # Ranks partition the split: every row exactly once.
    parts = [shards.load_split(base, "train", rank=r, world_size=2).keys for r in range(2)]
    assert sorted(parts[0] + parts[1]) == got.keys and not set(parts[0]) & set(parts[1])


def test_missing_manifest_is_a_user_error(base):
    from audiogan.errors import UserError

    with pytest.raises(UserError, match="no manifest.json"):
        shards.read_manifest(storage.join(base, "nothing-here"))


def _tiny_midi(path, n_notes: int, seed: int) -> None:
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    t = 0.0
    for _ in range(n_notes):
        t += float(rng.choice([0.0, 0.125, 0.25]))
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=int(rng.integers(40, 90)),
                                            start=t, end=t + float(rng.choice([0.1, 0.5]))))
    pm.instruments.append(piano)
    pm.write(str(path))


@pytest.mark.slow  # a cold Ray Data pipeline in a subprocess: ~15-40 s here
def test_preprocess_writes_into_the_bucket_and_load_split_reads_it(moto_endpoint, tmp_path):
    pytest.importorskip("audiogan.data.preprocess")
    from audiogan.data import notes

    source = tmp_path / "midi"
    source.mkdir()
    for i, n in enumerate((40, 56)):
        _tiny_midi(source / f"song{i}.mid", n, seed=i)
    out = s3_uri(moto_endpoint, f"pre-{uuid.uuid4().hex[:8]}/piano")
    env = {**os.environ, **S3_ENV, "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-m", "audiogan", "preprocess", "midi-dir",
                           "--source", str(source), "--out", out, "--window", "16", "--hop", "8"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]

    manifest = shards.read_manifest(out)
    assert manifest["kind"] == "notes" and manifest["example_shape"] == [16, 3]
    got = shards.load_split(out, "train", scaled=False)
    assert len(got.keys) == manifest["counts"]["train"] > 0
    want = {}
    for i in range(2):
        ws = notes.windows(notes.midi_to_notes(str(source / f"song{i}.mid")), 16, 8)
        want.update({f"song{i}.mid#{k}": w for k, w in enumerate(ws)})
    assert set(got.keys) == set(want)
    for key, x in zip(got.keys, got.x):
        np.testing.assert_allclose(x, want[key], atol=1e-6)
    # The objects really are in the bucket (through boto3, not pyarrow).
    prefix = out.split("?")[0].removeprefix(f"s3://{BUCKET}/")
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    names = {o["Key"].removeprefix(prefix + "/") for o in listed["Contents"]}
    assert shards.MANIFEST in names and any(n.startswith("shards/") for n in names)


@pytest.fixture(scope="module")
def local_checkpoint(tmp_path_factory) -> str:
    """A tiny SpectoGAN checkpoint on local disk (as tests/metrics/test_sample.py makes one)."""
    import torch

    from audiogan.config import resolve
    from audiogan.builders import build_critic, build_generator
    from audiogan.train.checkpoint import build_meta, save_checkpoint
    from tests.fixtures import make_dataset

    root = tmp_path_factory.mktemp("ckpt")
    data = make_dataset(root / "data", "spectrogram", n_train=8)
    manifest = shards.read_manifest(data)
    cfg = resolve("spectogan-cpu", {"model.d": 2})
    torch.manual_seed(0)
    g, c = build_generator(cfg, manifest["example_shape"]), build_critic(cfg, manifest["example_shape"])
    state = {"generator": g.state_dict(), "critic": c.state_dict(), "opt_generator": {},
             "opt_critic": {}, "step": 3, "critic_steps": 15}
    meta = build_meta(cfg, manifest, shards.manifest_hash(manifest), 3, 15, {})
    return save_checkpoint(str(root / "checkpoint"), state=state, cfg=cfg, meta=meta)


def test_sample_reads_a_checkpoint_uri(base, local_checkpoint, tmp_path, monkeypatch):
    import tempfile

    from audiogan import cli
    from audiogan.errors import UserError
    from audiogan.train import checkpoint as ckpt

    uri = storage.join(base, "run", "checkpoint")
    for name in (ckpt.MODEL, ckpt.CONFIG, ckpt.META):
        with open(os.path.join(local_checkpoint, name), "rb") as f:
            storage.write_bytes_atomic(storage.join(uri, name), f.read())
    scratch = tmp_path / "tmp"   # where a download may go: must be empty again afterwards
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    want, got = tmp_path / "want", tmp_path / "got"
    assert cli.main(["sample", local_checkpoint, "--out", str(want), "--n", "2"]) == 0
    assert cli.main(["sample", uri, "--out", str(got), "--n", "2"]) == 0
    for name in ("seed_0000.wav", "seed_0001.wav"):
        assert (got / name).read_bytes() == (want / name).read_bytes()
    assert json.load(open(got / "samples.json"))["checkpoint"] == uri
    loaded = ckpt.load_checkpoint(uri, family="spectogan")
    assert loaded.meta["step"] == 3 and loaded.state["critic_steps"] == 15
    assert list(scratch.iterdir()) == []

    # A defect behind a URI is the same one-line error, and the download is still removed.
    broken = storage.join(base, "broken", "checkpoint")
    storage.write_bytes_atomic(storage.join(broken, ckpt.CONFIG),
                               open(os.path.join(local_checkpoint, ckpt.CONFIG), "rb").read())
    with pytest.raises(UserError, match="has no model.pt"):
        ckpt.load_checkpoint(broken)
    with pytest.raises(UserError, match="not a directory"):
        ckpt.load_generator(storage.join(base, "nothing", "checkpoint"))
    assert list(scratch.iterdir()) == []
