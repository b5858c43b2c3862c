"""The one training loop: `train_loop(config, session, hooks)`, run by every worker.

`config = {"cfg": Config.to_dict(), "data": str, "run_dir": str | None}`. The optimisation
steps are `audiogan.wgan`'s (no Ray); everything Ray-specific goes through the `Session`
adapter, fault injection for tests through `FaultHooks` (off in production), what a
checkpoint holds through `TrainState`, and the objects come from `audiogan.builders`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from typing import Any, Callable

import torch
import torch.distributed as dist

from audiogan import builders, wgan
from audiogan.cluster.hooks import FaultHooks
from audiogan.cluster.session import Session, detect_session
from audiogan.config import Config
from audiogan.data import shards
from audiogan.data.labels import LabelMap
from audiogan.errors import UserError
from audiogan.sweep.keys import BUDGET_SPENT
from audiogan.train import checkpoint as ckpt
from audiogan.train.state import RankRandom, TrainState

log = logging.getLogger("audiogan.train")


class NonFiniteLossError(RuntimeError):
    """Training diverged; the message is the one line the CLI prints."""


def _all_mean(values: list[float], world_size: int) -> list[float]:
    """Mean over ranks (also makes every rank see a non-finite loss at the same step)."""
    if world_size == 1 or not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / world_size).tolist()


def _gather(obj: Any, world_size: int) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if world_size == 1 or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def train_loop(config: dict[str, Any], session: Session | None = None,
               hooks: FaultHooks | None = None) -> None:
    cfg = Config.from_dict(config["cfg"]).validate()
    data, run_dir = config["data"], config.get("run_dir")
    hooks = hooks or FaultHooks()
    log_dir = os.path.join(run_dir, "tensorboard") if run_dir and "://" not in run_dir else None
    session = session or detect_session(log_dir=log_dir)
    rank, world = session.world_rank, session.world_size
    device = session.device
    torch.set_num_threads(cfg.compute.cpus_per_worker)

    manifest = shards.read_manifest(data)
    manifest_hash = shards.manifest_hash(manifest)
    label_map = builders.build_label_map(cfg, manifest, data)  # None when unconditional
    examples = shards.load_split(data, "train", rank, world, manifest=manifest)
    if len(examples.x) == 0:
        raise UserError(f"'{data}' has no training examples for rank {rank} of {world}")
    n_classes = 0 if label_map is None else len(label_map)

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
    generator = builders.build_generator(cfg, manifest["example_shape"], n_classes)
    critic = builders.build_critic(cfg, manifest["example_shape"], n_classes)
    opt_g, opt_d = builders.build_optimizers(cfg, generator, critic)
    ema = builders.build_ema(cfg, generator)
    per_worker = builders.per_worker_batch(cfg, world)
    random = RankRandom(cfg.train.seed, rank, torch.from_numpy(examples.x), per_worker, device,
                        cfg.model.latent_dim,
                        real_labels=None if label_map is None
                        else torch.from_numpy(label_map.indices(examples.labels)),
                        label_probs=None if label_map is None else label_map.probs)
    augment = builders.build_augment(cfg, random.augment_gen)
    loss_spec = builders.build_loss_spec(cfg)
    loss_keys = loss_spec.keys
    random.batches.memory_format = builders.memory_format(cfg)
    random.batches.encode = builders.build_batch_encoder(cfg)
    precision = builders.build_precision(cfg, device)
    scalers = builders.build_scalers(cfg, device)
    state = TrainState(generator, critic, opt_g, opt_d, random,
                       ema=None if ema is None else ema.module, scalers=scalers)
    with session.restored_checkpoint() as resume_path:
        if resume_path:
            loaded, resume_path = ckpt.load_for_resume(resume_path, family=cfg.model.family)
            try:
                state.load_state_dict(loaded.state, rank, world)
            except RuntimeError as exc:
                raise UserError(f"checkpoint '{resume_path}': its weights do not fit this model "
                                "(different model.d or family?)") from exc
            if rank == 0:
                log.info("resuming from %s at step %d", resume_path, state.step)
    start_step = state.step

    generator.to(device)
    critic.to(device)
    if ema is not None:
        ema.module.to(device)
    # Evaluation, TensorBoard media (and, via the checkpoint, sampling) use the average.
    shown = generator if ema is None else ema.module
    g_model, d_model = generator, critic
    if world > 1 and dist.is_initialized():
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_model = DDP(generator, device_ids=ids, gradient_as_bucket_view=True)
        d_model = DDP(critic, device_ids=ids, gradient_as_bucket_view=True)
    g_step, g_fakes, critic_for_g = builders.compile_for_steps(cfg, g_model, generator, critic)

    evaluate = _build_evaluation(cfg, data, manifest, device, label_map) if rank == 0 else None
    tb = builders.build_tensorboard(cfg, session.log_dir, manifest, label_map) \
        if rank == 0 and session.log_dir else None
    tmp_root = tempfile.mkdtemp(prefix="audiogan-ckpt-") if rank == 0 else None
    total, ckpt_every = cfg.train.total_steps, cfg.ckpt_every
    report_due = ReportSchedule(cfg.train.report_every, cfg.train.report_every_s, rank)
    # Per key: lazy R1 leaves `loss/r1` out of the steps that skip the penalty.
    sums, counts = dict.fromkeys(loss_keys, 0.0), dict.fromkeys(loss_keys, 0)
    n_since, t_since = 0, 0.0
    t_start = t_mark = time.perf_counter()
    budget, budget_spent = cfg.train.time_budget_s, False
    if budget and state.train_seconds >= budget:
        log.info("train.time_budget_s (%s s) already spent at step %d: nothing to train",
                 budget, state.step)
        total = state.step
    try:
        while state.step < total:
            t0 = time.perf_counter()
            losses = wgan.train_step(g_step, d_model, opt_g, opt_d, random.batches,
                                     random.next_z, loss_spec, generator_raw=g_fakes,
                                     critic_raw=critic_for_g, augment=augment,
                                     next_labels=None if label_map is None else random.next_labels,
                                     precision=precision, scalers=scalers,
                                     critic_updates_done=state.critic_steps)
            state.step += 1
            if ema is not None:
                ema.update(generator, state.step)
            state.critic_steps += cfg.loss.n_critic
            step = state.step
            hooks.after_step(step, rank, world)
            hooks.corrupt_losses(losses, step, rank)
            # One all-reduce per step carries the losses and rank 0's votes: "report now",
            # and "the training-time budget is spent: this step is the last".
            spent = state.train_seconds + time.perf_counter() - t_mark
            stop_vote = float(rank == 0 and bool(budget) and spent >= budget)
            # Every rank takes the same keys: lazy R1's schedule follows critic_steps.
            present = [k for k in loss_keys if k in losses]
            *values, vote, stop = _all_mean(
                [*(losses[k] for k in present), report_due.vote(step), stop_vote], world)
            if stop > 0:
                total = step
                budget_spent = True
            if not all(math.isfinite(v) for v in values):
                terms = ", ".join(f"{k}={v:.4g}" for k, v in zip(present, values))
                raise NonFiniteLossError(f"non-finite loss at step {step}: {terms}; lower "
                                         f"optim.lr_g/optim.lr_d or "
                                         f"{wgan.STABILISE[loss_spec.kind]}")
            for k, v in zip(present, values):
                sums[k] += v
                counts[k] += 1
            n_since += 1
            t_since += time.perf_counter() - t0
            is_ckpt = step % ckpt_every == 0 or step == total
            if not (is_ckpt or vote > 0):
                continue
            report_due.reported()
            metrics: dict[str, Any] = {k: sums[k] / counts[k] for k in loss_keys if counts[k]}
            metrics.update({"time/step_s": t_since / n_since, "progress/step": step,
                            "progress/critic_steps": state.critic_steps,
                            # wall time of this attempt, reporting included (benchmarks)
                            "time/elapsed_s": time.perf_counter() - t_start,
                            # the run's training time so far, every attempt, evaluation and
                            # checkpoint writing excluded (train.time_budget_s counts it)
                            "time/train_s": state.train_seconds + time.perf_counter() - t_mark,
                            "sys/peak_rss_mb": _peak_rss_mb()})
            if budget_spent:  # the last report: a sweep tells this end from ASHA's stop
                metrics[BUDGET_SPENT] = 1
            hooks.log_report(metrics, rank)
            sums, counts = dict.fromkeys(loss_keys, 0.0), dict.fromkeys(loss_keys, 0)
            n_since, t_since = 0, 0.0
            checkpoint_dir = None
            if is_ckpt:
                state.train_seconds += time.perf_counter() - t_mark
                rng_by_rank = _gather(random.state_dict(), world)  # a collective: every rank
                if rank == 0:
                    if evaluate is not None:
                        t_eval = time.perf_counter()
                        metrics.update(evaluate(shown))
                        metrics["time/eval_s"] = time.perf_counter() - t_eval
                    meta = ckpt.build_meta(cfg, manifest, manifest_hash, step, state.critic_steps,
                                           {k: v for k, v in metrics.items()
                                            if isinstance(v, (int, float))}, label_map,
                                           data=data)
                    meta["start_step"] = start_step  # where this attempt began (resume, recovery)
                    checkpoint_dir = ckpt.save_checkpoint(
                        os.path.join(tmp_root, ckpt.checkpoint_name(step)),
                        state=state.state_dict(rng_by_rank), cfg=cfg, meta=meta, hooks=hooks)
            if rank == 0:
                _log_progress(metrics, total, loss_keys)
                if tb is not None:
                    tb.scalars(metrics, step)
                    if is_ckpt:
                        tb.media(shown, step)
            session.report(metrics, checkpoint_dir=checkpoint_dir)
            if checkpoint_dir:
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
            if is_ckpt:
                t_mark = time.perf_counter()  # evaluation, checkpoint and media excluded
        hooks.dump_params(rank, generator, critic)
    finally:
        if tb is not None:
            tb.close()
        if tmp_root:
            shutil.rmtree(tmp_root, ignore_errors=True)


class ReportSchedule:
    """When to report: every `every` steps, or (every = 0) every `every_s` seconds of wall
    time as rank 0 sees it. Only rank 0 votes; the per-step all-reduce gives every rank the
    same decision, so all ranks call `session.report` at the same steps."""

    def __init__(self, every: int, every_s: float, rank: int) -> None:
        self.every, self.every_s, self.rank = every, every_s, rank
        self.last = time.perf_counter()

    def vote(self, step: int) -> float:
        if self.every:
            return float(step % self.every == 0)
        return float(self.rank == 0 and time.perf_counter() - self.last >= self.every_s)

    def reported(self) -> None:
        self.last = time.perf_counter()


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _build_evaluation(cfg: Config, data: str, manifest: dict[str, Any], device: torch.device,
                      label_map: LabelMap | None = None
                      ) -> Callable[[torch.nn.Module], dict[str, float]]:
    """Build the metrics evaluator once (real-side work); returns generator -> metrics."""
    evaluator = builders.build_evaluator(cfg, data, manifest, device=str(device),
                                         label_map=label_map)
    floor = {f"floor/{k.split('/', 1)[-1]}": float(v) for k, v in evaluator.floor.items()}
    objective = cfg.train.objective
    if objective not in {m.name for m in evaluator.metrics}:
        # `builders.check_objective_available` says so before a run starts.
        raise UserError(f"train.objective '{objective}' cannot be computed on '{data}'")

    def evaluate(generator: torch.nn.Module) -> dict[str, float]:
        out = {k: float(v) for k, v in evaluator(generator).items()}
        return {**out, **floor}

    return evaluate


def _log_progress(metrics: dict[str, Any], total: int, loss_keys: tuple[str, ...]) -> None:
    parts = [f"step {metrics['progress/step']}/{total}"]
    parts += [f"{k.split('/')[-1]} {metrics[k]:.4g}" for k in loss_keys if k in metrics]
    parts.append(f"{metrics['time/step_s']:.3f} s/step")
    parts += [f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith("eval/")]
    log.info("  ".join(parts))
