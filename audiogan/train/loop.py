"""The one training loop: `train_loop(config, session)`, run by every worker.

`config = {"cfg": Config.to_dict(), "data": str, "run_dir": str | None,
"resume_from": str | None, "test_hooks": {...} (tests only)}`. The optimisation steps are
`audiogan.wgan`'s (no Ray); everything Ray-specific goes through the `Session` adapter.
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

from audiogan import wgan
from audiogan.config import Config
from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.models import build_critic, build_generator
from audiogan.train import checkpoint as ckpt
from audiogan.train.session import Session, detect_session
from audiogan.train.tb import TensorBoard

log = logging.getLogger("audiogan.train")

LOSS_KEYS = ("loss/critic", "loss/gp", "loss/wdist", "loss/gen")


class NonFiniteLossError(RuntimeError):
    """Training diverged; the message is the one line the CLI prints."""


def evaluator_available() -> bool:
    """True when `audiogan.metrics.build_evaluator` exists (checked on driver and workers)."""
    try:
        import audiogan.metrics as metrics
    except ImportError:
        return False
    return hasattr(metrics, "build_evaluator")


def test_hooks(config: dict[str, Any]) -> dict[str, Any]:
    """Fault injection for tests: from the config dict, else from AUDIOGAN_INJECT_* env vars."""
    hooks = dict(config.get("test_hooks") or {})
    env = {"nan_at_step": "AUDIOGAN_INJECT_NAN_AT_STEP",
           "exit_at_step": "AUDIOGAN_INJECT_EXIT_AT_STEP",
           "exit_marker": "AUDIOGAN_INJECT_EXIT_MARKER",
           "param_dump_dir": "AUDIOGAN_INJECT_PARAM_DUMP_DIR",
           "report_log": "AUDIOGAN_HOOK_REPORT_LOG",
           "step_sleep_s": "AUDIOGAN_HOOK_STEP_SLEEP_S"}
    for key, var in env.items():
        if key not in hooks and os.environ.get(var):
            hooks[key] = os.environ[var]
    for key in ("nan_at_step", "exit_at_step"):
        if key in hooks:
            hooks[key] = int(hooks[key])
    return hooks


class _Batches:
    """Epoch-wise shuffled batches of this rank's examples, from its own torch.Generator."""

    def __init__(self, x: torch.Tensor, batch_size: int, gen: torch.Generator,
                 device: torch.device) -> None:
        self.x, self.batch_size, self.gen, self.device = x, batch_size, gen, device
        self.perm = torch.randperm(len(x), generator=gen)
        self.pos = 0

    def __call__(self) -> torch.Tensor:
        n = len(self.x)
        if n < self.batch_size:
            idx = torch.randint(n, (self.batch_size,), generator=self.gen)
        else:
            if self.pos + self.batch_size > n:
                self.perm, self.pos = torch.randperm(n, generator=self.gen), 0
            idx = self.perm[self.pos:self.pos + self.batch_size]
            self.pos += self.batch_size
        return self.x[idx].to(self.device, non_blocking=True)


def _rank_seed(seed: int, rank: int, start_step: int, stream: int) -> int:
    # Distinct, reproducible streams per (seed, rank, resume point, purpose).
    return (seed * 1_000_003 + rank * 7919 + start_step * 104_729 + stream) % (2**63 - 1)


def _all_mean(values: list[float], world_size: int) -> list[float]:
    """Mean over ranks (also makes every rank see a non-finite loss at the same step)."""
    if world_size == 1 or not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / world_size).tolist()


def train_loop(config: dict[str, Any], session: Session | None = None) -> None:
    cfg = Config.from_dict(config["cfg"]).validate()
    data, run_dir = config["data"], config.get("run_dir")
    hooks = test_hooks(config)
    log_dir = os.path.join(run_dir, "tensorboard") if run_dir and "://" not in run_dir else None
    session = session or detect_session(log_dir=log_dir)
    rank, world = session.world_rank, session.world_size
    device = session.device
    torch.set_num_threads(cfg.compute.cpus_per_worker)

    manifest = shards.read_manifest(data)
    manifest_hash = shards.manifest_hash(manifest)
    examples = shards.load_split(data, "train", rank, world, manifest=manifest)
    if len(examples.x) == 0:
        raise UserError(f"'{data}' has no training examples for rank {rank} of {world}")
    real_x = torch.from_numpy(examples.x)

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
    generator = build_generator(cfg, manifest["example_shape"])
    critic = build_critic(cfg, manifest["example_shape"])
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.optim.lr_g,
                             betas=(cfg.optim.beta1, cfg.optim.beta2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.optim.lr_d,
                             betas=(cfg.optim.beta1, cfg.optim.beta2))

    step, critic_steps = 0, 0
    resume_path = session.latest_checkpoint() or config.get("resume_from")
    if resume_path:
        loaded, resume_path = ckpt.load_for_resume(resume_path, family=cfg.model.family)
        ckpt.load_state_into(generator, loaded.state["generator"], "generator", resume_path)
        ckpt.load_state_into(critic, loaded.state["critic"], "critic", resume_path)
        opt_g.load_state_dict(loaded.state["opt_generator"])
        opt_d.load_state_dict(loaded.state["opt_critic"])
        step, critic_steps = int(loaded.state["step"]), int(loaded.state["critic_steps"])
        if rank == 0:
            log.info("resuming from %s at step %d", resume_path, step)
    start_step = step

    generator.to(device)
    critic.to(device)
    g_model, d_model = generator, critic
    if world > 1 and dist.is_initialized():
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_model = DDP(generator, device_ids=ids, gradient_as_bucket_view=True)
        d_model = DDP(critic, device_ids=ids, gradient_as_bucket_view=True)

    torch.manual_seed(_rank_seed(cfg.train.seed, rank, step, 0))  # phase shuffle, interpolates
    batches = _Batches(real_x, cfg.optim.batch_size // world,
                       torch.Generator().manual_seed(_rank_seed(cfg.train.seed, rank, step, 1)),
                       device)
    z_gen = torch.Generator().manual_seed(_rank_seed(cfg.train.seed, rank, step, 2))
    per_worker = cfg.optim.batch_size // world

    def next_z() -> torch.Tensor:
        return (torch.rand(per_worker, cfg.model.latent_dim, generator=z_gen) * 2 - 1).to(device)

    evaluate = _build_evaluation(cfg, data, manifest, device) if rank == 0 else None
    tb = TensorBoard(session.log_dir, cfg, manifest) if rank == 0 and session.log_dir else None
    tmp_root = tempfile.mkdtemp(prefix="audiogan-ckpt-") if rank == 0 else None
    total, ckpt_every, report_every = cfg.train.total_steps, cfg.ckpt_every, cfg.train.report_every
    sums = dict.fromkeys(LOSS_KEYS, 0.0)
    n_since, t_since = 0, 0.0
    t_start = time.perf_counter()
    try:
        while step < total:
            t0 = time.perf_counter()
            losses = wgan.train_step(g_model, d_model, opt_g, opt_d, batches, next_z,
                                     cfg.loss.n_critic, cfg.loss.gp_weight,
                                     generator_raw=generator, critic_raw=critic)
            step += 1
            critic_steps += cfg.loss.n_critic
            if hooks.get("step_sleep_s"):  # a floor on step time: fault tests hit mid-run
                time.sleep(float(hooks["step_sleep_s"]))
            _maybe_exit(hooks, step, rank, world)
            if hooks.get("nan_at_step") == step and rank == 0:
                losses["loss/critic"] = float("nan")
            values = _all_mean([losses[k] for k in LOSS_KEYS], world)
            if not all(math.isfinite(v) for v in values):
                terms = ", ".join(f"{k}={v:.4g}" for k, v in zip(LOSS_KEYS, values))
                raise NonFiniteLossError(f"non-finite loss at step {step}: {terms}; lower "
                                         "optim.lr_g/optim.lr_d or raise loss.gp_weight")
            for k, v in zip(LOSS_KEYS, values):
                sums[k] += v
            n_since += 1
            t_since += time.perf_counter() - t0
            is_ckpt = step % ckpt_every == 0 or step == total
            if not (is_ckpt or step % report_every == 0):
                continue
            metrics: dict[str, Any] = {k: sums[k] / n_since for k in LOSS_KEYS}
            metrics.update({"time/step_s": t_since / n_since, "progress/step": step,
                            "progress/critic_steps": critic_steps,
                            # wall time of this attempt, reporting included (benchmarks)
                            "time/elapsed_s": time.perf_counter() - t_start,
                            "sys/peak_rss_mb": _peak_rss_mb()})
            if hooks.get("report_log") and rank == 0:
                _append_json(hooks["report_log"], metrics)
            sums, n_since, t_since = dict.fromkeys(LOSS_KEYS, 0.0), 0, 0.0
            checkpoint_dir = None
            if is_ckpt and rank == 0:
                if evaluate is not None:
                    metrics.update(evaluate(generator, cfg.train.objective))
                state = {"generator": generator.state_dict(), "critic": critic.state_dict(),
                         "opt_generator": opt_g.state_dict(), "opt_critic": opt_d.state_dict(),
                         "step": step, "critic_steps": critic_steps,
                         "rng": {"torch": torch.get_rng_state(), "z": z_gen.get_state(),
                                 "data": batches.gen.get_state()}}
                meta = ckpt.build_meta(cfg, manifest, manifest_hash, step, critic_steps,
                                       {k: v for k, v in metrics.items()
                                        if isinstance(v, (int, float))})
                meta["start_step"] = start_step  # where this attempt began (resume, recovery)
                checkpoint_dir = ckpt.save_checkpoint(
                    os.path.join(tmp_root, ckpt.checkpoint_name(step)), state=state, cfg=cfg,
                    meta=meta)
            if rank == 0:
                _log_progress(metrics, total)
                if tb is not None:
                    tb.scalars(metrics, step)
                    if is_ckpt:
                        tb.media(generator, step)
            session.report(metrics, checkpoint_dir=checkpoint_dir)
            if checkpoint_dir:
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if hooks.get("param_dump_dir"):
            _dump_params(hooks["param_dump_dir"], rank, generator, critic)
    finally:
        if tb is not None:
            tb.close()
        if tmp_root:
            shutil.rmtree(tmp_root, ignore_errors=True)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _append_json(path: str, metrics: dict[str, Any]) -> None:
    import json

    with open(path, "a") as f:
        f.write(json.dumps(metrics) + "\n")


def _dump_params(directory: str, rank: int, *modules: torch.nn.Module) -> None:
    """Test hook: this rank's parameters, to compare replicas after a DDP run."""
    os.makedirs(directory, exist_ok=True)
    state = {f"{i}.{k}": v.detach().cpu() for i, m in enumerate(modules)
             for k, v in m.state_dict().items()}
    torch.save(state, os.path.join(directory, f"rank{rank}.pt"))


def _maybe_exit(hooks: dict[str, Any], step: int, rank: int, world: int) -> None:
    """Test hook: the last rank dies hard once at `exit_at_step` (marker file = once)."""
    if hooks.get("exit_at_step") != step or rank != world - 1:
        return
    marker = hooks.get("exit_marker")
    if marker and os.path.exists(marker):
        return
    if marker:
        with open(marker, "w") as f:
            f.write(str(step))
    # Ray Train's controller collects one queued report per health-check poll (2 s): give it
    # time to commit the last checkpoint, as a real crash long after a checkpoint would.
    time.sleep(float(hooks.get("exit_delay_s", 5.0)))
    log.warning("test hook: worker rank %d exits at step %d", rank, step)
    os._exit(1)


def _build_evaluation(cfg: Config, data: str, manifest: dict[str, Any], device: torch.device
                      ) -> Callable[[torch.nn.Module, str], dict[str, float]] | None:
    """Build the metrics evaluator once (real-side work); None until audiogan.metrics exists."""
    if not evaluator_available():
        return None
    from audiogan.metrics import build_evaluator

    evaluator = build_evaluator(cfg, data, manifest, device=str(device))
    floor = {f"floor/{k.split('/', 1)[-1]}": float(v) for k, v in evaluator.floor.items()}

    def evaluate(generator: torch.nn.Module, objective: str) -> dict[str, float]:
        was_training = generator.training
        generator.eval()
        try:
            out = {k: float(v) for k, v in evaluator(generator).items()}
        finally:
            generator.train(was_training)
        if objective not in out:
            # Missing objective ranks worst; Ray breaks ties by report order: latest wins.
            log.warning("evaluation gave no '%s'; checkpoints ranked by recency", objective)
            out[objective] = float("nan")
        return {**out, **floor}

    return evaluate


def _log_progress(metrics: dict[str, Any], total: int) -> None:
    parts = [f"step {metrics['progress/step']}/{total}"]
    parts += [f"{k.split('/')[-1]} {metrics[k]:.4g}" for k in LOSS_KEYS]
    parts.append(f"{metrics['time/step_s']:.3f} s/step")
    parts += [f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith("eval/")]
    log.info("  ".join(parts))
