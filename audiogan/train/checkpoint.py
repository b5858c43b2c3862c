"""Checkpoint directories: one writer (rank 0, atomic) and one loader for resume and sampling.

A checkpoint is a directory:
  model.pt     `TrainState.state_dict()` (audiogan.train.state): generator, critic, both
               optimisers, step, critic_steps and every rank's random state -- only tensors
               and plain containers, loaded with weights_only=True
  config.json  Config.to_dict()
  meta.json    versions, family, example_shape, data manifest hash, kind, note_scaling or
               normalisation, labels, step, critic_steps, metrics at that step
Any defect (missing file, truncated, wrong family, pickle payload) is a one-line UserError.
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

import torch
from torch import nn

from audiogan import __version__
from audiogan.cluster.hooks import FaultHooks
from audiogan.config import Config
from audiogan.errors import UserError
from audiogan.train.state import TrainState

log = logging.getLogger(__name__)

MODEL = "model.pt"
CONFIG = "config.json"
META = "meta.json"
STATE_KEYS = TrainState.KEYS


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
               critic_steps: int, metrics: dict[str, float]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "versions": _versions(), "family": cfg.model.family, "preset": cfg.preset,
        "example_shape": list(manifest["example_shape"]), "kind": manifest["kind"],
        "data_manifest_hash": manifest_hash, "dataset": manifest.get("dataset", ""),
        "labels": list(manifest.get("labels", [])), "step": int(step),
        "critic_steps": int(critic_steps),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    for key in ("note_scaling", "normalisation"):
        if key in manifest:
            meta[key] = manifest[key]
    return meta


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
    """Read and check a checkpoint directory; `family` (if given) must match."""
    path = str(path)
    if not os.path.isdir(path):
        raise UserError(f"checkpoint '{path}' is not a directory")
    for name in (MODEL, CONFIG, META):
        if not os.path.isfile(os.path.join(path, name)):
            raise UserError(f"checkpoint '{path}' has no {name}: not an audiogan checkpoint "
                            "or incomplete")
    try:
        with open(os.path.join(path, CONFIG)) as f:
            cfg = Config.from_dict(json.load(f))
        with open(os.path.join(path, META)) as f:
            meta = json.load(f)
    except (ValueError, OSError) as exc:
        raise UserError(f"checkpoint '{path}': unreadable {CONFIG}/{META}: {exc}") from exc
    try:
        state = torch.load(os.path.join(path, MODEL), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses anything but tensors and plain containers (no code runs).
        raise UserError(f"checkpoint '{path}': {MODEL} holds objects other than weights; "
                        "refusing to load it") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint '{path}': {MODEL} is truncated or corrupt ({first})") from exc
    if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
        raise UserError(f"checkpoint '{path}': {MODEL} lacks the expected state "
                        f"({', '.join(STATE_KEYS)})")
    if meta.get("family") != cfg.model.family:
        raise UserError(f"checkpoint '{path}': meta family '{meta.get('family')}' does not "
                        f"match config family '{cfg.model.family}'")
    if family is not None and cfg.model.family != family:
        raise UserError(f"checkpoint '{path}' is a {cfg.model.family} checkpoint, "
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


def load_state_into(module: nn.Module, state_dict: dict[str, Any], what: str, path: str) -> None:
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise UserError(f"checkpoint '{path}': {what} weights do not fit this model "
                        f"(different model.d or family?)") from exc


def load_generator(path: str, device: str = "cpu") -> tuple[nn.Module, Config, dict[str, Any]]:
    """(generator in eval mode, cfg, meta) from a checkpoint directory."""
    from audiogan.builders import build_generator

    loaded = load_checkpoint(path)
    generator = build_generator(loaded.cfg, loaded.meta["example_shape"])
    load_state_into(generator, loaded.state["generator"], "generator", path)
    return generator.to(device).eval(), loaded.cfg, loaded.meta
