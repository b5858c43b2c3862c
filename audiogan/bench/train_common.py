"""What the `audiogan bench train` parts share: a synthetic dataset, the plain PyTorch loop's
models, and a TorchTrainer run that logs every report."""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from audiogan import storage
from audiogan.config import Config, DataConfig
from audiogan.data import scaling, shards


def synthetic_dataset(root: str, kind: str, n_train: int, seed: int = 0) -> str:
    """Random shards + manifest of `kind`, enough to train and evaluate on."""
    rng = np.random.default_rng(seed)
    n = n_train + 2 * max(8, n_train // 8)
    if kind == "notes":
        xs = np.stack([rng.integers(30, 100, (n, 256)), rng.exponential(0.1, (n, 256)),
                       rng.exponential(0.3, (n, 256)) + 0.01], -1).astype(np.float32)
        extra: dict[str, Any] = {"note_scaling": scaling.note_constants(DataConfig())}
    else:
        xs = (-6 + rng.standard_normal((n, 128, 128))).astype(np.float32)
        extra = {"normalisation": {"mean": [-6.0] * 128, "std": [1.0] * 128, "clip_std": 3.0}}
    held = (n - n_train) // 2
    splits = ["train"] * n_train + ["validation"] * held + ["test"] * (n - n_train - held)
    os.makedirs(os.path.join(root, shards.SHARDS), exist_ok=True)
    table = shards.make_table([f"s/{i:06d}#0" for i in range(n)], splits,
                              [str(i % 10) for i in range(n)], xs)
    pq.write_table(table, os.path.join(root, shards.SHARDS, "part-00000.parquet"))
    counts = {s: splits.count(s) for s in shards.SPLITS}
    storage.write_json_atomic(os.path.join(root, shards.MANIFEST), {
        "schema_version": shards.SCHEMA_VERSION, "kind": kind, "dataset": "bench",
        "example_shape": [256, 3] if kind == "notes" else [128, 128], "counts": counts,
        "labels": sorted({str(i % 10) for i in range(n)}), **extra})
    return root


def plain_models(cfg: Config, data: str) -> tuple[Any, ...]:
    from audiogan import builders
    from audiogan.data import shards
    from audiogan.train.state import Batches

    manifest = shards.read_manifest(data)
    x = torch.from_numpy(shards.load_split(data, "train", manifest=manifest).x)
    torch.manual_seed(cfg.train.seed)
    g = builders.build_generator(cfg, manifest["example_shape"])
    c = builders.build_critic(cfg, manifest["example_shape"])
    opt_g, opt_c = builders.build_optimizers(cfg, g, c)
    batches = Batches(x, cfg.optim.batch_size, torch.Generator().manual_seed(1),
                      torch.device("cpu"), memory_format=builders.memory_format(cfg))
    zg = torch.Generator().manual_seed(2)

    def next_z() -> torch.Tensor:
        return torch.rand(cfg.optim.batch_size, cfg.model.latent_dim, generator=zg) * 2 - 1

    return g, c, opt_g, opt_c, batches, next_z, builders.build_loss_spec(cfg), \
        builders.build_precision(cfg, torch.device("cpu"))


def plain_seconds_per_step(cfg: Config, data: str, warmup: int, steps: int) -> float:
    """The plain loop's seconds per step, with the recipe's per-step work that the product
    does too (`train.augment`, the EMA update, lazy R1's schedule), so a ratio against the
    product measures the product's overhead, not its recipe."""
    from audiogan import builders, wgan

    torch.set_num_threads(cfg.compute.cpus_per_worker)
    g, c, opt_g, opt_c, batches, next_z, loss, precision = plain_models(cfg, data)
    augment = builders.build_augment(cfg, torch.Generator().manual_seed(3))
    ema = builders.build_ema(cfg, g)

    def step(i: int) -> None:
        wgan.train_step(g, c, opt_g, opt_c, batches, next_z, loss, precision=precision,
                        augment=augment, critic_updates_done=i * loss.n_critic)
        if ema is not None:
            ema.update(g, i + 1)

    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    return (time.perf_counter() - t0) / steps


def report_log_run(cfg: Config, data: str, workers: int, total: int, work: str
                   ) -> list[dict[str, Any]]:
    """`audiogan train`'s TorchTrainer for `total` steps (evaluation only at the end, after
    the last report's clock); every report as rank 0 sent it, and `fit()`'s wall seconds
    under "wall_s" in the last one."""
    from audiogan.cluster.hooks import FaultHooks
    from audiogan.train.run import build_trainer

    cfg = cfg.override({"compute.workers": workers, "train.total_steps": total,
                        "train.eval_every": total, "train.max_failures": 0}).validate()
    name = f"run-{time.time_ns()}"
    log_path = os.path.join(work, f"{name}.jsonl")
    start = time.perf_counter()
    # The loop's report log (a hook, off in production) gives the timing at every report.
    build_trainer(cfg, data, name, work, hooks=FaultHooks(report_log=log_path)).fit()
    wall = time.perf_counter() - start
    with open(log_path) as f:
        reports = [json.loads(line) for line in f]
    shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    reports[-1]["wall_s"] = wall
    return reports
