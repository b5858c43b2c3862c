"""Builders: where a `Config` becomes objects. Networks, optimisers, the per-worker batch,
the evaluator and the TensorBoard writer are made here from the config; the modules they
come from take explicit keyword arguments and never see a `Config` (audiocraft's rule).

The commands (`train`, `sweep`, `evaluate`, `sample`) and the training loop hold a
`Config` and hand it to these functions; dataset-derived shapes (the manifest's
`example_shape`) are injected here, as StyleGAN does.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import torch
from torch import nn

from audiogan.config import Config, resolve
from audiogan.errors import UserError


def train_config_from_args(args: argparse.Namespace) -> Config:
    """Preset + --set + flag shortcuts, validated (shared by the dry run and the real run)."""
    overrides = list(args.overrides or [])
    if args.workers is not None:
        overrides.append(f"compute.workers={args.workers}")
    if args.gpu:
        overrides.append("compute.gpu=true")
    if args.total_steps is not None:
        overrides.append(f"train.total_steps={args.total_steps}")
    return resolve(args.preset, overrides)


def build_generator(cfg: Config, example_shape: Sequence[int]) -> nn.Module:
    from audiogan.models import PianoGenerator, SpecGenerator, network_shape

    family = cfg.model.family
    network_shape(family, example_shape)
    if family == "pianogan":
        return PianoGenerator(d=cfg.model.d, latent_dim=cfg.model.latent_dim)
    return SpecGenerator(d=cfg.model.d, latent_dim=cfg.model.latent_dim)


def build_critic(cfg: Config, example_shape: Sequence[int]) -> nn.Module:
    from audiogan.models import PianoCritic, SpecCritic, network_shape

    family = cfg.model.family
    network_shape(family, example_shape)
    if family == "pianogan":
        return PianoCritic(d=cfg.model.d, phase_shuffle=cfg.model.phase_shuffle)
    return SpecCritic(d=cfg.model.d)


def build_optimizers(cfg: Config, generator: nn.Module, critic: nn.Module
                     ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """(generator's Adam, critic's Adam), WaveGAN's betas by default."""
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    return (torch.optim.Adam(generator.parameters(), lr=cfg.optim.lr_g, betas=betas),
            torch.optim.Adam(critic.parameters(), lr=cfg.optim.lr_d, betas=betas))


def per_worker_batch(cfg: Config, world_size: int) -> int:
    """`optim.batch_size` is global: each of `world_size` workers takes an equal share."""
    if cfg.optim.batch_size % world_size:
        raise UserError(f"optim.batch_size ({cfg.optim.batch_size}) must be divisible by the "
                        f"{world_size} workers")
    return cfg.optim.batch_size // world_size


def build_evaluator(cfg: Config, data: str, manifest: dict[str, Any], device: str = "cpu"
                    ) -> Any:
    from audiogan.metrics.evaluator import build_evaluator as build

    return build(data, manifest, n_samples=cfg.metrics.n_samples, ndb_k=cfg.metrics.ndb_k,
                 eval_seed=cfg.metrics.eval_seed, latent_dim=cfg.model.latent_dim,
                 classifier=cfg.metrics.classifier, device=device,
                 griffin_lim_iters=cfg.data.griffin_lim_iters)


def build_tensorboard(cfg: Config, log_dir: str, manifest: dict[str, Any]) -> Any:
    from audiogan.train.tb import TensorBoard

    return TensorBoard(log_dir, manifest, eval_seed=cfg.metrics.eval_seed,
                       latent_dim=cfg.model.latent_dim,
                       griffin_lim_iters=cfg.data.griffin_lim_iters)


def check_objective_available(cfg: Config, data: str) -> None:
    """A one-line error before anything starts when the run's objective needs a reference
    this dataset lacks (eval/is without a digit classifier) or a conditional generator
    (eval/cond_acc)."""
    from audiogan.metrics import registry
    from audiogan.metrics.evaluator import find_classifier

    metric = registry.get(cfg.train.objective)
    if "classifier" in metric.needs and find_classifier(cfg.metrics.classifier, data) is None:
        raise UserError(f"train.objective {metric.name} needs the digit classifier: train it "
                        f"with `audiogan classifier train --data {data}` or set "
                        "metrics.classifier")
    # getattr: `model.conditional` arrives with the conditioning work; until then no
    # generator is conditional.
    if "labels" in metric.needs and not getattr(cfg.model, "conditional", False):
        raise UserError(f"train.objective {metric.name} needs a conditional generator "
                        "(model.conditional=true)")
