"""Where the training loop reports to: Ray Train, a Tune function trial, or nothing (local).

The loop speaks only to this small `Session` interface, so one loop serves `audiogan train`
(TorchTrainer workers), single-worker sweep trials (directly in the Tune trial process, where
`ray.train.report` raises) and benchmarks/tests (no Ray at all).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any, Protocol

import torch

log = logging.getLogger(__name__)


class Session(Protocol):
    world_rank: int
    world_size: int
    device: torch.device
    log_dir: str | None

    def latest_checkpoint(self) -> str | None: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None: ...


def _local_dir_of(checkpoint: Any) -> str:
    """A local directory holding the checkpoint (downloaded when it lives on object storage)."""
    import pyarrow.fs as pafs

    if isinstance(checkpoint.filesystem, pafs.LocalFileSystem):
        return checkpoint.path
    return checkpoint.to_directory(tempfile.mkdtemp(prefix="audiogan-ckpt-"))


class RayTrainSession:
    """Inside a TorchTrainer worker (Ray Train V2)."""

    def __init__(self, log_dir: str | None = None) -> None:
        import ray.train
        import ray.train.torch

        from ray.train.v2._internal.execution import context as train_context

        # Ray logs every report at INFO ("Reporting training result N: TrainingReport(...)"),
        # which buries the loop's own progress lines: keep Ray's warnings only.
        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
        ctx = ray.train.get_context()
        self.world_rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.log_dir = log_dir

    def latest_checkpoint(self) -> str | None:
        import ray.train

        ckpt = ray.train.get_checkpoint()
        return _local_dir_of(ckpt) if ckpt is not None else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        name = os.path.basename(checkpoint_dir.rstrip("/")) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)


class TuneSession:
    """Directly inside a Tune function trial (one worker, no TorchTrainer)."""

    world_rank = 0
    world_size = 1

    def __init__(self) -> None:
        import ray.tune

        self.device = torch.device("cpu")
        self.log_dir = ray.tune.get_context().get_trial_dir()

    def latest_checkpoint(self) -> str | None:
        import ray.tune

        ckpt = ray.tune.get_checkpoint()
        return _local_dir_of(ckpt) if ckpt is not None else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        import ray.tune

        checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(metrics, checkpoint=checkpoint)


class LocalSession:
    """No Ray: keeps reported metrics in memory and checkpoints under `checkpoint_root`."""

    world_rank = 0
    world_size = 1

    def __init__(self, checkpoint_root: str | None = None, log_dir: str | None = None,
                 resume_from: str | None = None) -> None:
        self.device = torch.device("cpu")
        self.log_dir = log_dir
        self.checkpoint_root = checkpoint_root
        self.reports: list[dict[str, Any]] = []
        self.checkpoints: list[str] = []
        self._resume_from = resume_from

    def latest_checkpoint(self) -> str | None:
        return self.checkpoints[-1] if self.checkpoints else self._resume_from

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir and self.checkpoint_root:
            dest = os.path.join(self.checkpoint_root, os.path.basename(checkpoint_dir.rstrip("/")))
            if os.path.exists(dest):
                shutil.rmtree(dest)
            shutil.copytree(checkpoint_dir, dest)
            self.checkpoints.append(dest)


def detect_session(log_dir: str | None = None) -> Session:
    """Ray Train worker -> RayTrainSession; Tune trial -> TuneSession; else LocalSession."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return LocalSession(log_dir=log_dir)
    if ray.is_initialized():
        from ray.train.v2._internal.util import _in_ray_train_worker
        from ray.tune.trainable.trainable_fn_utils import _in_tune_session

        if _in_tune_session():
            return TuneSession()
        if _in_ray_train_worker():
            return RayTrainSession(log_dir=log_dir)
    return LocalSession(log_dir=log_dir)
