"""`audiogan bench train` part `gap`: where the product's full-preset step loses to the plain loop.

Part `full` finds the product (`audiogan train`'s 1-worker TorchTrainer) a few percent
slower per step than the plain PyTorch loop. This part splits that gap on the `pianogan`
preset (d = 64, batch 64: a step takes seconds here, SpectoGAN's takes minutes) into what
each layer between the two adds, all on THREADS threads, with the same recipe:

  plain        `wgan.train_step` in this process (Ray running beside it, idle)
  thread       the same plain loop in a Python thread of this process: Train V2 runs the
               training function in a thread of its worker
  ray_task     the same plain loop inside a Ray task of THREADS CPUs
  train_worker the same plain loop as the training function of a bare 1-worker
               TorchTrainer (no audiogan loop, no reports): Train's worker around it
  loop_local   audiogan's training loop (`train.loop.train_loop`) in this process, without
               Ray (LocalSession): the loop's own per-step work (batches, EMA, the loss
               all-reduce, report votes)
  product      the 1-worker TorchTrainer: wall seconds per step between its first and last
               report, and the loop's own in-step time (`time/step_s`), reporting excluded

Rounds alternate their order (plain, thread, ray_task, train_worker, loop_local, product,
then the reverse): the machine's speed drifts between runs minutes apart. Ratios are speed
ratios (> 1: faster), medians over rounds of the ratio within a round.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
from typing import Any

from audiogan.bench.train_common import plain_seconds_per_step
from audiogan.bench.train_full import THREADS, full_preset, product_reports, report_timing
from audiogan.config import Config

ROUNDS = 2
STEPS = (2, 8)  # (warm-up, timed) for the plain loops
LOOP_STEPS = 14  # loop_local: reports every 2 steps, the first one's steps are warm-up


def _in_ray_task(cfg: Config, data: str, warmup: int, timed: int) -> float:
    import ray

    @ray.remote(num_cpus=THREADS)
    def plain(cfg_dict: dict[str, Any]) -> float:
        return plain_seconds_per_step(Config.from_dict(cfg_dict), data, warmup, timed)

    return ray.get(plain.remote(cfg.to_dict()))


def _in_thread(cfg: Config, data: str, warmup: int, timed: int) -> float:
    out: list[float] = []
    thread = threading.Thread(
        target=lambda: out.append(plain_seconds_per_step(cfg, data, warmup, timed)))
    thread.start()
    thread.join()
    if not out:
        raise RuntimeError("the plain loop's thread failed (see its traceback above)")
    return out[0]


def _plain_train_fn(config: dict[str, Any]) -> None:
    seconds = plain_seconds_per_step(Config.from_dict(config["cfg"]), config["data"],
                                     config["warmup"], config["timed"])
    with open(config["out"], "w") as f:  # Train V2 returns no metrics without a checkpoint
        f.write(repr(seconds))


def _in_train_worker(cfg: Config, data: str, warmup: int, timed: int, work: str) -> float:
    import ray.train
    from ray.train.torch import TorchTrainer

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        out = os.path.join(tmp, "seconds")
        TorchTrainer(_plain_train_fn,
                     train_loop_config={"cfg": cfg.to_dict(), "data": data, "warmup": warmup,
                                        "timed": timed, "out": out},
                     scaling_config=ray.train.ScalingConfig(
                         num_workers=1, resources_per_worker={"CPU": THREADS}),
                     run_config=ray.train.RunConfig(storage_path=tmp, name="train_worker")
                     ).fit()
        with open(out) as f:
            return float(f.read())


def _loop_local(cfg: Config, data: str, total: int) -> dict[str, float]:
    from audiogan.cluster.session import LocalSession
    from audiogan.train.loop import train_loop

    run = cfg.override({"train.total_steps": total, "train.eval_every": total,
                        "train.report_every_s": 0, "train.report_every": 2}).validate()
    session = LocalSession()
    train_loop({"cfg": run.to_dict(), "data": data, "run_dir": None}, session=session)
    return report_timing(session.reports[:-1])  # the last one follows the final evaluation


def bench_gap(quick: bool, work: str) -> dict[str, Any]:
    """Needs a running Ray (the caller's session)."""
    cfg, data = full_preset("pianogan", THREADS, quick, work, "gap")
    warmup, timed = (1, 2) if quick else STEPS
    plain0 = plain_seconds_per_step(cfg, data, 1, 1)  # sizes the product's run
    # The product reports by time (the default): long enough for 4+ reports.
    total = max(warmup + timed, int(4.5 * cfg.train.report_every_s / plain0)) + 1
    rounds = []
    for i in range(1 if quick else ROUNDS):
        order = ["plain", "thread", "ray_task", "train_worker", "loop_local", "product"]
        order = order if i % 2 == 0 else order[::-1]
        row: dict[str, Any] = {"order": order}
        for name in order:
            if name == "plain":
                row["plain_s"] = plain_seconds_per_step(cfg, data, warmup, timed)
            elif name == "thread":
                row["thread_s"] = _in_thread(cfg, data, warmup, timed)
            elif name == "ray_task":
                row["ray_task_s"] = _in_ray_task(cfg, data, warmup, timed)
            elif name == "train_worker":
                row["train_worker_s"] = _in_train_worker(cfg, data, warmup, timed, work)
            elif name == "loop_local":
                got = _loop_local(cfg, data, 6 if quick else LOOP_STEPS)
                row["loop_local_s"], row["loop_local_in_step_s"] = got["wall"], got["in_step"]
            else:
                got = report_timing(product_reports(cfg, data, total, work))
                row["product_s"], row["product_in_step_s"] = got["wall"], got["in_step"]
        row.update({
            "loop_local_over_plain": row["plain_s"] / row["loop_local_s"],
            "thread_over_plain": row["plain_s"] / row["thread_s"],
            "ray_task_over_plain": row["plain_s"] / row["ray_task_s"],
            "train_worker_over_ray_task": row["ray_task_s"] / row["train_worker_s"],
            "product_in_step_over_train_worker":
                row["train_worker_s"] / row["product_in_step_s"],
            "product_over_product_in_step": row["product_in_step_s"] / row["product_s"],
            "product_over_plain": row["plain_s"] / row["product_s"]})
        rounds.append(row)
    ratios = [k for k in rounds[0] if "_over_" in k]
    return {"preset": "pianogan", "d": cfg.model.d, "batch_size": cfg.optim.batch_size,
            "threads": THREADS, "product_steps": total, "rounds": rounds,
            **{k: statistics.median(r[k] for r in rounds) for k in ratios}}
