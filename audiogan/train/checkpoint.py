"""Checkpoint directories: one writer (rank 0, atomic) and one loader for resume and sampling.

A checkpoint is a directory:
  model.pt     `TrainState.state_dict()` (audiogan.train.state): generator, critic, both
               optimisers, the generator's weight average (`ema`, None when off), step,
               critic_steps and every rank's random state -- only tensors and plain
               containers, loaded with weights_only=True
  config.json  Config.to_dict()
  meta.json    versions, family, example_shape, data manifest hash, the data path, kind,
               note_scaling or normalisation (complex data: also its representation and
               the same clips' log_magnitude_normalisation), labels, step, critic_steps,
               metrics at that step, and for a
               conditional model `label_map` (audiogan.data.labels.LabelMap.to_dict():
               class names by index, the rule and its parameters, training windows per
               class)
`load_generator` returns the weight average when the checkpoint has one (sampling and
evaluation use it), else the generator.
Any defect (missing file, truncated, wrong family, pickle payload) is a one-line UserError.
Loading reads a local path or a storage URI (file://, s3://, gs://: `audiogan sample` and
`evaluate` take either); writing is local (Ray Train moves checkpoints to shared storage).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
import torch
from torch import nn

from audiogan import __version__, storage
from audiogan.cluster.hooks import FaultHooks
from audiogan.config import Config
from audiogan.data.labels import LabelMap
from audiogan.errors import UserError
from audiogan.train.state import TrainState

log = logging.getLogger(__name__)

MODEL = "model.pt"
CONFIG = "config.json"
META = "meta.json"
STATE_KEYS = TrainState.KEYS
REQUIRED_KEYS = tuple(k for k in STATE_KEYS if k not in TrainState.OPTIONAL)


@dataclass
class Loaded:
    cfg: Config
    meta: dict[str, Any]
    state: dict[str, Any]


def checkpoint_name(step: int) -> str:
    return f"checkpoint_{step:08d}"


def _versions() -> dict[str, str]:
    versions = {"audiogan": __version__, "torch": torch.__version__}
    try:
        import ray

        versions["ray"] = ray.__version__
    except ImportError:  # pragma: no cover - ray is a dependency
        pass
    return versions


def build_meta(cfg: Config, manifest: dict[str, Any], manifest_hash: str, step: int,
               critic_steps: int, metrics: dict[str, float],
               label_map: LabelMap | None = None, data: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "versions": _versions(), "family": cfg.model.family, "preset": cfg.preset,
        "example_shape": list(manifest["example_shape"]), "kind": manifest["kind"],
        "data_manifest_hash": manifest_hash, "dataset": manifest.get("dataset", ""),
        "labels": list(manifest.get("labels", [])), "step": int(step),
        "critic_steps": int(critic_steps),
        "metrics": {k: float(v) for k, v in metrics.items()}, "data": data,
    }
    for key in ("note_scaling", "normalisation", "representation", "log_magnitude_normalisation"):
        if key in manifest:
            meta[key] = manifest[key]
    if label_map is not None:
        meta["label_map"] = label_map.to_dict()
    return meta


def label_map_of(meta: dict[str, Any]) -> LabelMap | None:
    """The checkpoint's `LabelMap`, or None for an unconditional model."""
    return LabelMap.from_dict(meta["label_map"]) if meta.get("label_map") else None


def save_checkpoint(path: str, *, state: dict[str, Any], cfg: Config, meta: dict[str, Any],
                    hooks: FaultHooks = FaultHooks()) -> str:
    """Write the checkpoint directory atomically: build it beside `path`, then rename."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-ckpt-", dir=parent)
    try:
        torch.save(state, os.path.join(tmp, MODEL))
        hooks.during_checkpoint_write(os.path.join(tmp, MODEL), int(meta.get("step", -1)))
        with open(os.path.join(tmp, CONFIG), "w") as f:
            json.dump(cfg.to_dict(), f, indent=2, sort_keys=True)
        with open(os.path.join(tmp, META), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(path: str, family: str | None = None) -> Loaded:
    """Read and check a checkpoint directory (local path or storage URI); `family` (if given)
    must match.

    An object-store URI (s3://, gs://) is read by downloading the three files into a
    temporary directory, removed again before this returns; the state is in memory then.
    """
    path = str(path)
    if storage.is_uri(path):
        fs, inside = storage.resolve(path)
        if not isinstance(fs, pafs.LocalFileSystem):
            with tempfile.TemporaryDirectory(prefix="ag-ckpt-") as local:
                _download(path, local)
                return _load_local(local, family, shown=path)
        return _load_local(inside, family, shown=path)  # file://: read in place
    return _load_local(path, family, shown=path)


def _download(uri: str, local: str) -> None:
    """The checkpoint files at `uri` into the directory `local` (the same checks as local)."""
    if not storage.is_dir(uri):
        raise UserError(f"checkpoint '{uri}' is not a directory")
    for name in (MODEL, CONFIG, META):
        remote = storage.join(uri, name)
        if not storage.exists(remote):
            raise UserError(f"checkpoint '{uri}' has no {name}: not an audiogan checkpoint "
                            "or incomplete")
        try:
            data = storage.read_bytes(remote)
        except OSError as exc:
            raise UserError(f"checkpoint '{uri}': cannot read {name}: {exc}") from exc
        with open(os.path.join(local, name), "wb") as f:
            f.write(data)


def _load_local(path: str, family: str | None, shown: str) -> Loaded:
    """`load_checkpoint` on a local directory; errors name the checkpoint as `shown`."""
    if not os.path.isdir(path):
        raise UserError(f"checkpoint '{shown}' is not a directory")
    for name in (MODEL, CONFIG, META):
        if not os.path.isfile(os.path.join(path, name)):
            raise UserError(f"checkpoint '{shown}' has no {name}: not an audiogan checkpoint "
                            "or incomplete")
    try:
        with open(os.path.join(path, CONFIG)) as f:
            cfg = Config.from_dict(json.load(f))
        with open(os.path.join(path, META)) as f:
            meta = json.load(f)
    except (ValueError, OSError) as exc:
        raise UserError(f"checkpoint '{shown}': unreadable {CONFIG}/{META}: {exc}") from exc
    try:
        state = torch.load(os.path.join(path, MODEL), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses anything but tensors and plain containers (no code runs).
        raise UserError(f"checkpoint '{shown}': {MODEL} holds objects other than weights; "
                        "refusing to load it") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint '{shown}': {MODEL} is truncated or corrupt ({first})") from exc
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise UserError(f"checkpoint '{shown}': {MODEL} lacks the expected state "
                        f"({', '.join(REQUIRED_KEYS)})")
    if int(state["step"]) != int(meta.get("step", state["step"])):
        # Only an overwritten directory whose new upload was cut off mixes steps.
        raise UserError(f"checkpoint '{shown}': {MODEL} is at step {int(state['step'])}, "
                        f"{META} at step {meta['step']}: files of two checkpoints")
    if cfg.model.conditional and not meta.get("label_map"):
        raise UserError(f"checkpoint '{shown}': a conditional model without a label_map in "
                        f"{META}")
    if meta.get("family") != cfg.model.family:
        raise UserError(f"checkpoint '{shown}': meta family '{meta.get('family')}' does not "
                        f"match config family '{cfg.model.family}'")
    if family is not None and cfg.model.family != family:
        raise UserError(f"checkpoint '{shown}' is a {cfg.model.family} checkpoint, "
                        f"expected {family}")
    return Loaded(cfg=cfg, meta=meta, state=state)


def load_for_resume(path: str, family: str | None = None) -> tuple[Loaded, str]:
    """The checkpoint at `path`, else -- with a warning -- the newest loadable older sibling.

    A crash, preemption or full disk can leave the latest checkpoint truncated; its
    siblings (`checkpoint_*` in the same run or trial directory, names sort by step) are
    older states. Resuming from the newest good one loses one more interval instead of
    the run. No good sibling: the latest's own error.
    """
    try:
        return load_checkpoint(path, family), path
    except UserError as exc:
        error = exc
    path = os.path.abspath(path.rstrip("/"))
    if not os.path.isdir(path):
        raise error
    parent, name = os.path.split(path)
    older = sorted((n for n in os.listdir(parent) if n.startswith("checkpoint_") and n < name
                    and os.path.isdir(os.path.join(parent, n))), reverse=True)
    for candidate in older:
        try:
            loaded = load_checkpoint(os.path.join(parent, candidate), family)
        except UserError:
            continue
        log.warning("checkpoint unusable, resuming from the previous one: %s -> %s (step %s)",
                    error, candidate, loaded.meta.get("step"))
        return loaded, os.path.join(parent, candidate)
    raise error


def newest_complete(fs: pafs.FileSystem, path: str) -> str:
    """The checkpoint to resume from, given the one Ray recorded (`path`, a checkpoint
    directory inside `fs`, an object store); `path` itself when nothing better is there.

    - Incomplete: an object appears only when its own upload completed, so an upload cut
      off part-way (a killed node, a lost connection) leaves a directory with files
      missing, never a truncated file. It is skipped, with a warning, for the newest
      complete older one.
    - Newer: a driver lost after a checkpoint's upload and before Tune's next snapshot
      of its state (every ~10 s) leaves a newer checkpoint that the restored Ray does not
      know. Taken only when names carry the step (`checkpoint_name`, Ray Train runs):
      Tune names a trial's checkpoints by its own counter, restored from the snapshot, and
      would write its next checkpoint into that newer directory's name.
    """
    def complete(candidate: str) -> bool:
        infos = fs.get_file_info([f"{candidate}/{n}" for n in (MODEL, CONFIG, META)])
        return all(i.type == pafs.FileType.File for i in infos)

    parent, name = path.rstrip("/").rsplit("/", 1)
    by_step = len(name) == len(checkpoint_name(0))
    listed = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    names = sorted({i.base_name for i in listed if i.type == pafs.FileType.Directory
                    and i.base_name.startswith("checkpoint_")
                    and len(i.base_name) == len(name) and (by_step or i.base_name < name)}
                   | {name}, reverse=True)
    for candidate in names:
        if not complete(f"{parent}/{candidate}"):
            # Ray's own (`name`) or a newer one whose upload failed before Ray recorded it.
            log.warning("checkpoint %s/%s is incomplete (an interrupted upload?): skipped",
                        parent, candidate)
            continue
        if candidate > name:
            log.info("resuming from %s, newer than the %s Ray recorded (its state was "
                     "snapshotted before this checkpoint's upload)", candidate, name)
        elif candidate < name:
            log.warning("resuming from the previous checkpoint, %s", candidate)
        return f"{parent}/{candidate}"
    return path


def load_state_into(module: nn.Module, state_dict: dict[str, Any], what: str, path: str) -> None:
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise UserError(f"checkpoint '{path}': {what} weights do not fit this model "
                        f"(different model.d or family?)") from exc


def latest_in(path: str) -> str:
    """`path` itself when it is a checkpoint, else the newest `checkpoint_*` in it (a run
    or trial directory given where a checkpoint is expected: its latest state)."""
    if storage.is_uri(path) or os.path.isfile(os.path.join(path, MODEL)) \
            or not os.path.isdir(path):
        return path
    names = sorted(n for n in os.listdir(path) if n.startswith("checkpoint_")
                   and os.path.isdir(os.path.join(path, n)))
    return os.path.join(path, names[-1]) if names else path


def load_generator(path: str, device: str = "cpu") -> tuple[nn.Module, Config, dict[str, Any]]:
    """(generator in eval mode, cfg, meta) from a checkpoint directory (path or URI), or
    a run directory's latest checkpoint: the EMA weights when the checkpoint has them,
    else the generator's."""
    from audiogan.builders import build_generator

    path = latest_in(path)
    loaded = load_checkpoint(path)
    label_map = label_map_of(loaded.meta)
    generator = build_generator(loaded.cfg, loaded.meta["example_shape"],
                                n_classes=0 if label_map is None else len(label_map))
    ema = loaded.state.get("ema")
    load_state_into(generator, ema if ema is not None else loaded.state["generator"],
                    "generator", path)
    return generator.to(device).eval(), loaded.cfg, loaded.meta
