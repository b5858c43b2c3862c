"""`audiogan preprocess KIND --source S --out O`: raw dataset -> shards + rejects + manifest.

Order of writes (re-runs depend on it): an existing incomplete output is cleared (manifest
first, so a crash while clearing still reads as incomplete); shards stream out as Ray Data
delivers rows; then `rejects.jsonl`; the manifest last, atomically.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import logging
import os
import time
from importlib import metadata
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audiogan import storage
from audiogan.config import DataConfig
from audiogan.data import complex_spec, perfile, pipeline, scaling, shards, sources, spectro
from audiogan.data.stats import BinStats
from audiogan.errors import UserError

log = logging.getLogger(__name__)

SHARD_BYTES = 32 * 2 ** 20   # raw example bytes per parquet file
PROGRESS_SECONDS = 5.0
_OURS = (shards.SHARDS, shards.REJECTS, shards.MANIFEST)


def prepare_out(out: str, source: str, overwrite: bool) -> None:
    """Refuse a complete --out unless overwrite; clear an incomplete one (ours only)."""
    if not storage.is_uri(out) and not storage.is_uri(source) and \
            os.path.realpath(out) == os.path.realpath(source):
        raise UserError("--out must differ from --source")
    if not storage.exists(out):
        return
    if not storage.is_dir(out):
        raise UserError(f"--out '{out}' exists and is not a directory")
    manifest = storage.join(out, shards.MANIFEST)
    if storage.exists(manifest) and not overwrite:
        raise UserError(f"'{out}' already holds a complete dataset (manifest.json): "
                        "pass --overwrite to replace it")
    from pyarrow.fs import FileSelector

    fs, root = storage.resolve(out)
    names = [i.base_name for i in fs.get_file_info(FileSelector(root, recursive=False))]
    foreign = sorted(n for n in names if n not in _OURS and not n.startswith(".tmp-"))
    if foreign:
        raise UserError(f"refusing to clear '{out}': it holds '{foreign[0]}', which preprocess "
                        "did not write; choose a new or empty --out")
    if storage.exists(manifest):
        fs.delete_file(storage.resolve(manifest)[1])
    for name in names:
        if name == shards.MANIFEST:
            continue
        path = storage.join(out, name)
        if storage.is_dir(path):
            storage.delete_dir(path)
        else:
            fs.delete_file(storage.resolve(path)[1])
    log.info("cleared incomplete output '%s'", out)


class ShardWriter:
    """Buffers example rows and writes ~SHARD_BYTES parquet files through `storage`."""

    def __init__(self, out: str, shape: Sequence[int]) -> None:
        self.dir, self.shape = storage.join(out, shards.SHARDS), tuple(shape)
        self.buf: list[pa.Table] = []
        self.bytes = 0
        self.n_files = 0

    def add(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self.buf.append(rows)
            self.bytes += rows.column("x").nbytes
            if self.bytes >= SHARD_BYTES:
                self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        rows = pa.concat_tables(self.buf)
        xs = np.frombuffer(b"".join(rows.column("x").to_pylist()), np.float32)
        table = shards.make_table(rows.column("key").to_pylist(), rows.column("split").to_pylist(),
                                  rows.column("label").to_pylist(),
                                  xs.reshape(rows.num_rows, *self.shape))
        sink = io.BytesIO()
        pq.write_table(table, sink)
        storage.write_bytes_atomic(storage.join(self.dir, f"part-{self.n_files:05d}.parquet"),
                                   sink.getvalue())
        self.n_files += 1
        self.buf, self.bytes = [], 0


def _fingerprint(items: Sequence[dict[str, str]]) -> str:
    """sha256 over sorted (key, size): cheap, stable across copies of the same data."""
    paths = [it["path"] for it in items if it["path"]]
    sizes: dict[str, Any] = {}
    if paths:
        fs, _ = storage.resolve(paths[0])
        infos = fs.get_file_info([storage.resolve(p)[1] for p in paths])
        sizes = {p: i.size for p, i in zip(paths, infos)}
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it['key']}\t{sizes.get(it['path'])}\n".encode())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("audiogan", "numpy", "pyarrow", "ray", "pretty_midi", "soundfile", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def run(kind: str, source: str, out: str, params: perfile.Params, overwrite: bool = False,
        address: str | None = None, batch_size: int | None = None,
        items: Sequence[dict[str, str]] | None = None,
        tables: Iterable[pa.Table] | None = None) -> dict[str, Any]:
    """The whole stage; returns the manifest it wrote (`items` overrides the listing;
    `tables`, the per-file results of those items (`perfile.process_batch`), replaces the
    Ray Data pipeline: tests run the stage's bookkeeping without a cluster)."""
    t0 = time.time()
    prepare_out(out, source, overwrite)
    items = list(items) if items is not None else sources.list_items(kind, source)
    if tables is not None:
        totals = _stream(tables, len(items), params, out)
    else:
        started = pipeline.ensure_ray(address)
        try:
            totals = _stream(pipeline.iter_tables(pipeline.build_dataset(items, params,
                                                                         batch_size)),
                             len(items), params, out)
        finally:
            if started:
                import ray

                ray.shutdown()
    rejects = sorted(totals["rejects"], key=lambda r: r["path"])
    storage.write_bytes_atomic(storage.join(out, shards.REJECTS),
                               "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejects)
                               .encode())
    n_examples = sum(totals["counts"].values())
    if not n_examples:
        raise UserError(f"no examples: all {len(items)} source files were rejected "
                        f"(reasons in {storage.join(out, shards.REJECTS)})")
    if params.kind == "spectrogram" and not totals["stats"].n:
        raise UserError("no training examples: spectrogram normalisation is computed on the "
                        "train split")
    manifest = {
        "schema_version": shards.SCHEMA_VERSION, "kind": params.kind, "dataset": kind,
        "example_shape": list(params.example_shape), "counts": dict(totals["counts"]),
        "files": dict(totals["files"]), "labels": sorted(totals["labels"]),
        # windows per split and raw label: what audiogan.data.labels derives classes from
        "label_counts": {split: dict(sorted(totals["label_counts"][split].items()))
                         for split in shards.SPLITS},
        "params": {"window": params.window, "hop": params.hop, "apply_pedal": params.apply_pedal,
                   "source": source, "n_source_files": len(items),
                   "sample_rate": 16000, "clip_samples": spectro.CLIP_SAMPLES,
                   "n_fft": spectro.N_FFT, "hop_length": spectro.HOP_LENGTH,
                   "log_eps": spectro.LOG_EPS, "representation": params.representation},
        "repaired": dict(sorted(totals["repaired"].items())),
        "rejected": dict(sorted(collections.Counter(r["reason"] for r in rejects).items())),
        "source_fingerprint": _fingerprint(items), "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - t0, 2),
    }
    for split in shards.SPLITS:
        manifest["counts"].setdefault(split, 0)
        manifest["files"].setdefault(split, 0)
    rule = sources.split_rule(kind, items)
    if rule is not None:  # midi-dir / wav-dir: the split is ours, say how it was made
        manifest["split_rule"] = rule
        log.info("%s split, files listed per split %s (%s)", kind, rule["counts"], rule["rule"])
    if params.kind == "notes":
        manifest["note_scaling"] = scaling.note_constants(DataConfig())
    elif params.representation == complex_spec.REPRESENTATION:
        manifest.update(complex_spec.manifest_fields(
            totals["stats"], totals["lm_stats"].normalisation(DataConfig().norm_clip_std)))
    else:
        manifest["representation"] = complex_spec.LOG_MAGNITUDE
        manifest["normalisation"] = totals["stats"].normalisation(DataConfig().norm_clip_std)
    storage.write_json_atomic(storage.join(out, shards.MANIFEST), manifest)
    return manifest


def _stream(tables: Iterable[pa.Table], n_items: int, params: perfile.Params, out: str
            ) -> dict[str, Any]:
    writer = ShardWriter(out, params.example_shape)
    counts: collections.Counter = collections.Counter()
    files: collections.Counter = collections.Counter()
    repaired: collections.Counter = collections.Counter()
    labels: set[str] = set()
    label_counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    rejects: list[dict[str, str]] = []
    is_complex = params.representation == complex_spec.REPRESENTATION
    stats: Any = complex_spec.ComplexStats() if is_complex else BinStats(spectro.N_BINS)
    lm_stats = BinStats(spectro.N_BINS)  # complex: the same clips' log magnitudes
    n_done, t0, last = 0, time.time(), time.time()
    for table in tables:
        is_file = table.column("is_file").to_numpy(zero_copy_only=False)
        for row in table.filter(pa.array(is_file)).to_pylist():
            n_done += 1
            if row["reject"]:
                rejects.append({"path": row["key"], "reason": row["reject"],
                                "detail": row["detail"]})
                continue
            files[row["split"]] += 1
            labels.add(row["label"])
            repaired.update(r for r in row["repaired"].split(",") if r)
        examples = table.filter(pa.array(~is_file)).select(["key", "split", "label", "x"])
        counts.update(examples.column("split").to_pylist())
        for split, label in zip(examples.column("split").to_pylist(),
                                examples.column("label").to_pylist()):
            label_counts[split][label] += 1
        if params.kind == "spectrogram" and examples.num_rows:
            train = examples.filter(pa.compute.equal(examples.column("split"), "train"))
            if train.num_rows:
                x = np.frombuffer(b"".join(train.column("x").to_pylist()), np.float32)
                if is_complex:
                    raw = x.reshape(-1, *complex_spec.EXAMPLE_SHAPE)
                    stats.add(raw)
                    lm_stats.add(complex_spec.log_magnitude(raw.astype(np.float64))
                                 .reshape(-1, spectro.N_BINS))
                else:
                    stats.add(x.reshape(-1, spectro.N_BINS))
        writer.add(examples)
        if time.time() - last >= PROGRESS_SECONDS:
            last = time.time()
            log.info("preprocess: %d/%d files, %d examples, %d rejected, %.1f files/s",
                     n_done, n_items, sum(counts.values()), len(rejects),
                     n_done / (last - t0))
    writer.flush()
    return {"counts": counts, "files": files, "repaired": repaired, "labels": labels,
            "label_counts": label_counts,
            "rejects": rejects, "stats": stats, "lm_stats": lm_stats}


def summary_line(m: dict[str, Any], out: str) -> str:
    split = ", ".join(f"{s} {m['files'][s]}/{m['counts'][s]}" for s in shards.SPLITS)
    return (f"preprocess {m['dataset']}: files/examples {split}; "
            f"rejected {sum(m['rejected'].values())}, repairs {m['repaired'] or 0}; "
            f"{m['seconds']:.1f} s -> {out}")


def cli_main(args: argparse.Namespace) -> int:
    if args.window < 1 or args.hop < 1 or args.hop > args.window:
        raise UserError("--window and --hop must be >= 1 and --hop <= --window")
    kind = "notes" if sources.media(args.kind) == "midi" else "spectrogram"
    representation = getattr(args, "representation", None)
    if representation and kind == "notes":
        raise UserError(f"--representation applies to audio sources, not {args.kind}")
    params = perfile.Params(kind, args.window, args.hop, bool(args.apply_pedal))
    if kind == "spectrogram":
        params = perfile.Params(kind, spectro.N_BINS, spectro.N_BINS, False,
                                representation or complex_spec.LOG_MAGNITUDE)
    if not storage.is_dir(args.source):
        raise UserError(f"--source '{args.source}' is not a directory")
    storage.check_writable(args.out, "--out")
    manifest = run(args.kind, args.source, args.out, params, overwrite=args.overwrite,
                   address=args.address)
    print(summary_line(manifest, args.out))
    return 0
