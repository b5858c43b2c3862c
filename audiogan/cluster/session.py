"""Where the training loop reports to: Ray Train, a Tune function trial, or nothing (local).

The loop speaks only to this small `Session` interface, so one loop serves `audiogan train`
(TorchTrainer workers), single-worker sweep trials (directly in the Tune trial process, where
`ray.train.report` raises) and benchmarks/tests (no Ray at all).

Resuming has one way in: `with session.restored_checkpoint() as path:` gives the checkpoint
this run should continue from (None for a fresh run) as a local directory. A checkpoint on
object storage is downloaded into a temporary copy that is removed when the block ends:
the newest complete checkpoint of the run there, which may be newer than the one Ray
recorded (a driver lost before Tune's snapshot) and is never an interrupted upload
(`checkpoint.newest_complete`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from typing import Any, Iterator, Protocol

import torch

log = logging.getLogger(__name__)


class Session(Protocol):
    world_rank: int
    world_size: int
    device: torch.device
    log_dir: str | None

    def restored_checkpoint(self) -> contextlib.AbstractContextManager[str | None]: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None: ...


@contextlib.contextmanager
def _local_copy(checkpoint: Any) -> Iterator[str | None]:
    """A local directory holding a Ray `Checkpoint` (downloaded when it lives on object
    storage, and the download removed afterwards)."""
    import pyarrow.fs as pafs

    if checkpoint is None:
        yield None
        return
    if isinstance(checkpoint.filesystem, pafs.LocalFileSystem):
        yield checkpoint.path
        return
    from ray.train import Checkpoint

    from audiogan.train.checkpoint import newest_complete

    path = newest_complete(checkpoint.filesystem, checkpoint.path)
    if path != checkpoint.path:
        checkpoint = Checkpoint(path=path, filesystem=checkpoint.filesystem)
    tmp = tempfile.mkdtemp(prefix="audiogan-restore-")
    try:
        yield checkpoint.to_directory(os.path.join(tmp, os.path.basename(path.rstrip("/"))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class RayTrainSession:
    """Inside a TorchTrainer worker (Ray Train V2)."""

    def __init__(self, log_dir: str | None = None) -> None:
        import ray.train
        import ray.train.torch

        from audiogan.cluster import compat

        compat.quiet_train_report_logs()
        ctx = ray.train.get_context()
        self.world_rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.log_dir = log_dir

    def restored_checkpoint(self) -> contextlib.AbstractContextManager[str | None]:
        import ray.train

        return _local_copy(ray.train.get_checkpoint())

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

    def restored_checkpoint(self) -> contextlib.AbstractContextManager[str | None]:
        import ray.tune

        return _local_copy(ray.tune.get_checkpoint())

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        import ray.tune

        checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(metrics, checkpoint=checkpoint)


class LocalSession:
    """No Ray: keeps reported metrics in memory and checkpoints under `checkpoint_root`.

    `resume_from` plays the part of Ray's restored checkpoint (benchmarks, tests)."""

    world_rank = 0
    world_size = 1

    def __init__(self, checkpoint_root: str | None = None, log_dir: str | None = None,
                 resume_from: str | None = None) -> None:
        self.device = torch.device("cpu")
        self.log_dir = log_dir
        self.checkpoint_root = checkpoint_root
        self.reports: list[dict[str, Any]] = []
        self.checkpoints: list[str] = []
        self.resume_from = resume_from

    @contextlib.contextmanager
    def restored_checkpoint(self) -> Iterator[str | None]:
        yield self.checkpoints[-1] if self.checkpoints else self.resume_from

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
    import ray

    if ray.is_initialized():
        from audiogan.cluster import compat

        if compat.in_tune_session():
            return TuneSession()
        if compat.in_ray_train_worker():
            return RayTrainSession(log_dir=log_dir)
    return LocalSession(log_dir=log_dir)
