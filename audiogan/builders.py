"""Builders: where a `Config` becomes objects. Networks, optimisers, the per-worker batch,
the evaluator and the TensorBoard writer are made here from the config; the modules they
come from take explicit keyword arguments and never see a `Config` (audiocraft's rule).

The commands (`train`, `sweep`, `evaluate`, `sample`) and the training loop hold a
`Config` and hand it to these functions; dataset-derived shapes (the manifest's
`example_shape`) are injected here, as StyleGAN does.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import nn

from audiogan.config import Config, resolve
from audiogan.errors import UserError

if TYPE_CHECKING:  # annotations only: the modules are imported where they are built
    from audiogan.augment import DiffAugment
    from audiogan.data.labels import LabelMap
    from audiogan.train.ema import EMA
    from audiogan.wgan import LossSpec, Precision


def train_config_from_args(args: argparse.Namespace) -> Config:
    """Preset (or --config FILE) + --set + flag shortcuts, validated (shared by the dry run
    and the real run). A config file holds a full resolved config of any schema version
    (`config.migrate`): a run's config.yaml, a sweep trial's, `best_config.yaml`."""
    overrides = list(args.overrides or [])
    if args.workers is not None:
        overrides.append(f"compute.workers={args.workers}")
    if args.gpu:
        overrides.append("compute.gpu=true")
    if args.total_steps is not None:
        overrides.append(f"train.total_steps={args.total_steps}")
    config = getattr(args, "config", None)
    if config and args.preset:
        raise UserError("give a PRESET or --config FILE, not both")
    if config:
        return config_file(config).override(overrides).validate()
    if not args.preset:
        raise UserError("audiogan train needs a preset (e.g. pianogan-cpu) or --config FILE")
    return resolve(args.preset, overrides)


def config_file(path: str) -> Config:
    """A resolved config file (YAML or JSON), validated; one-line errors."""
    from audiogan import storage

    raw = storage.read_yaml(path, "config file")
    if not isinstance(raw, dict) or "preset" not in raw:
        raise UserError(f"config file '{path}' is not a resolved config (no 'preset' key)")
    return Config.from_dict(raw).validate()


def _check_classes(cfg: Config, n_classes: int) -> None:
    if cfg.model.conditional != (n_classes > 0):
        raise ValueError(f"model.conditional={cfg.model.conditional} with n_classes={n_classes}"
                         ": pass the label map's size (build_label_map)")


def build_generator(cfg: Config, example_shape: Sequence[int], n_classes: int = 0) -> nn.Module:
    """The family's generator; `n_classes` is the label map's size when conditional."""
    from audiogan.models import PianoGenerator, SpecGenerator

    family = cfg.model.family
    channels = _channels(cfg, example_shape)
    _check_classes(cfg, n_classes)
    kwargs = {"d": cfg.model.d, "latent_dim": cfg.model.latent_dim, "n_classes": n_classes,
              "upsample": cfg.model.upsample, "channels": channels}
    if family == "pianogan":
        return PianoGenerator(**kwargs, pitch_keys=_pitch_keys(cfg))
    return _memory_format(cfg, SpecGenerator(**kwargs))


def build_critic(cfg: Config, example_shape: Sequence[int], n_classes: int = 0) -> nn.Module:
    """The family's critic (a projection critic when conditional)."""
    from audiogan.models import PianoCritic, SpecCritic

    family = cfg.model.family
    channels = _channels(cfg, example_shape)
    _check_classes(cfg, n_classes)
    if family == "pianogan":
        return PianoCritic(d=cfg.model.d, phase_shuffle=cfg.model.phase_shuffle,
                           n_classes=n_classes, channels=channels)
    return _memory_format(cfg, SpecCritic(d=cfg.model.d, n_classes=n_classes,
                                          channels=channels))


def _pitch_keys(cfg: Config) -> int:
    from audiogan.pitch import n_keys

    return n_keys(cfg.data.pitch_min, cfg.data.pitch_max) if cfg.model.pitch == "onehot" else 0


def _channels(cfg: Config, example_shape: Sequence[int]) -> int:
    """The networks' channels: the data's, or one per key + step + duration (one-hot pitch)."""
    from audiogan.models import network_shape
    from audiogan.pitch import TIME_CHANNELS

    channels = network_shape(cfg.model.family, example_shape)[0]  # also checks the shape
    keys = _pitch_keys(cfg)
    return keys + TIME_CHANNELS if keys else channels


def build_batch_encoder(cfg: Config) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What real batches go through before the critic: one-hot pitch, or nothing."""
    if cfg.model.pitch != "onehot":
        return None
    from audiogan.pitch import OneHotPitch

    return OneHotPitch(pitch_center=cfg.data.pitch_center, pitch_scale=cfg.data.pitch_scale,
                       pitch_min=cfg.data.pitch_min, pitch_max=cfg.data.pitch_max).encode


def _memory_format(cfg: Config, net: nn.Module) -> nn.Module:
    # NHWC: oneDNN's (CPU) and cuDNN's (tensor cores) faster 2-D convolutions; same outputs.
    return net.to(memory_format=torch.channels_last) if cfg.compute.channels_last else net


def memory_format(cfg: Config) -> torch.memory_format:
    """The layout of the network inputs (batches), matching the networks'."""
    return torch.channels_last if cfg.compute.channels_last else torch.contiguous_format


def build_precision(cfg: Config, device: torch.device) -> Precision:
    """`compute.precision` as the steps' autocast; on a GPU, bf16/fp16 runs also let the
    matmuls left in fp32 use TF32 (fp32 runs stay IEEE fp32)."""
    from audiogan.wgan import Precision

    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.compute.precision]
    if device.type == "cuda" and dtype is not None:
        torch.set_float32_matmul_precision("high")
    return Precision(dtype=dtype, device_type=device.type)


def build_scalers(cfg: Config, device: torch.device) -> tuple[Any, Any]:
    """fp16's gradient scalers, one per optimiser (critic's, generator's); else (None, None)."""
    if cfg.compute.precision != "fp16":
        return None, None
    return torch.amp.GradScaler(device.type), torch.amp.GradScaler(device.type)


def compile_for_steps(cfg: Config, generator: nn.Module, generator_raw: nn.Module,
                      critic_raw: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(generator for its step, generator for the critic's fakes, critic for the generator
    step), compiled when `compute.compile`. The critic's own step takes the double backward
    of the gradient penalty, which torch.compile does not support: it stays eager."""
    if not cfg.compute.compile:
        return generator, generator_raw, critic_raw
    return torch.compile(generator), torch.compile(generator_raw), torch.compile(critic_raw)


def build_label_map(cfg: Config, manifest: dict[str, Any], data: str = "the data"
                    ) -> LabelMap | None:
    """The data's `LabelMap` when `model.conditional`, else None (one-line errors when the
    data has no usable labels)."""
    if not cfg.model.conditional:
        return None
    from audiogan.data.labels import label_map

    return label_map(manifest, n_composers=cfg.data.n_composers,
                     min_class_windows=cfg.data.min_class_windows, data=data)


def build_loss_spec(cfg: Config) -> LossSpec:
    from audiogan.wgan import LossSpec

    return LossSpec(kind=cfg.loss.kind, gp_weight=cfg.loss.gp_weight,
                    r1_weight=cfg.loss.r1_weight, r1_every=cfg.loss.r1_every,
                    n_critic=cfg.loss.n_critic)


def build_augment(cfg: Config, generator: torch.Generator) -> DiffAugment | None:
    """`train.augment`'s DiffAugment drawing from `generator` (the rank's stream), or None."""
    if not cfg.augment_ops:
        return None
    from audiogan.augment import DiffAugment

    return DiffAugment(cfg.augment_ops, generator=generator)


def build_ema(cfg: Config, generator: nn.Module) -> EMA | None:
    """The generator's weight average (`train.ema_decay`, `train.ema_rampup`), or None."""
    if cfg.train.ema_decay <= 0:
        return None
    from audiogan.train.ema import EMA

    return EMA(generator, decay=cfg.train.ema_decay, rampup=cfg.train.ema_rampup)


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


def reference_data(cfg: Config, data: str, manifest: dict[str, Any]) -> str:
    """The log-magnitude dataset that scores a complex run: `metrics.reference_data`,
    checked (one-line errors); a warning when it was made from other source files."""
    import logging

    from audiogan.data import shards

    ref = cfg.metrics.reference_data
    if not ref:
        raise UserError(f"'{data}' holds complex spectrograms: set metrics.reference_data to "
                        "a log-magnitude dataset of the same clips (`audiogan preprocess` "
                        "without --representation), whose statistics, bins and digit "
                        "classifier score the run")
    ref_manifest = shards.read_manifest(ref)
    if ref_manifest.get("kind") != "spectrogram" or shards.is_complex(ref_manifest):
        raise UserError(f"metrics.reference_data '{ref}' must hold log-magnitude "
                        "spectrograms")
    if ref_manifest.get("source_fingerprint") != manifest.get("source_fingerprint"):
        logging.getLogger(__name__).warning(
            "metrics.reference_data '%s' was preprocessed from other source files than "
            "'%s': the complex run is scored against other clips", ref, data)
    return ref


def build_evaluator(cfg: Config, data: str, manifest: dict[str, Any], device: str = "cpu",
                    label_map: LabelMap | None = None,
                    generated: dict[str, Any] | None = None, keep_floor: bool = False) -> Any:
    """`label_map` (conditional models): evaluation labels follow its class frequencies.
    A complex dataset is scored by its log-magnitude reference (`reference_data`);
    `generated`: a complex checkpoint's meta when `data` already is that reference;
    `keep_floor`: the evaluator keeps the real floor's examples (final evaluation)."""
    from audiogan.data import shards
    from audiogan.metrics.evaluator import build_evaluator as build

    source = generated
    if shards.is_complex(manifest):
        source, data = manifest, reference_data(cfg, data, manifest)
        manifest = shards.read_manifest(data)
    return build(data, manifest, n_samples=cfg.metrics.n_samples, ndb_k=cfg.metrics.ndb_k,
                 eval_seed=cfg.metrics.eval_seed, latent_dim=cfg.model.latent_dim,
                 classifier=cfg.metrics.classifier, device=device,
                 griffin_lim_iters=cfg.data.griffin_lim_iters,
                 griffin_lim_momentum=cfg.data.griffin_lim_momentum,
                 label_probs=None if label_map is None else label_map.probs,
                 label_names=None if label_map is None else list(label_map.names),
                 source_manifest=source, keep_floor=keep_floor)


def scored_as(checkpoint: str, meta: dict[str, Any], data: str,
              manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint's meta when a complex run is scored on its log-magnitude dataset
    `data` (`build_evaluator(generated=...)`), else None; a one-line error when
    the checkpoint cannot be scored on `data`."""
    from audiogan.data import shards

    if manifest["kind"] != meta.get("kind"):
        raise UserError(f"checkpoint '{checkpoint}' generates {meta.get('kind')} but '{data}' "
                        f"holds {manifest['kind']} data")
    if shards.is_complex(meta) != shards.is_complex(manifest):
        if not shards.is_complex(meta):
            raise UserError(f"checkpoint '{checkpoint}' generates log magnitudes but '{data}' "
                            "holds complex spectrograms: evaluate it on log-magnitude data")
        return meta
    if meta.get("data_manifest_hash") not in (None, shards.manifest_hash(manifest)):
        import logging

        logging.getLogger(__name__).warning(
            "checkpoint was trained on other data (manifest hash %s, '%s' has %s): metrics "
            "compare with '%s'", meta.get("data_manifest_hash"), data,
            shards.manifest_hash(manifest), data)
    return None


def build_tensorboard(cfg: Config, log_dir: str, manifest: dict[str, Any],
                      label_map: LabelMap | None = None) -> Any:
    from audiogan.train.tb import TensorBoard

    return TensorBoard(log_dir, manifest, eval_seed=cfg.metrics.eval_seed,
                       latent_dim=cfg.model.latent_dim,
                       griffin_lim_iters=cfg.data.griffin_lim_iters,
                       griffin_lim_momentum=cfg.data.griffin_lim_momentum,
                       label_probs=None if label_map is None else label_map.probs)


def check_objective_available(cfg: Config, data: str) -> None:
    """A one-line error before anything starts when the run's objective needs a reference
    this dataset lacks (eval/is without a digit classifier) or a conditional generator
    (eval/cond_acc). A complex dataset's reference (metrics.reference_data) is checked too."""
    from audiogan.data import shards
    from audiogan.metrics import registry
    from audiogan.metrics.evaluator import find_classifier

    metric = registry.get(cfg.train.objective)
    manifest = shards.read_manifest(data)
    if shards.is_complex(manifest):
        data = reference_data(cfg, data, manifest)  # complex runs are scored through it
    if "classifier" in metric.needs and find_classifier(cfg.metrics.classifier, data) is None:
        raise UserError(f"train.objective {metric.name} needs the digit classifier: train it "
                        f"with `audiogan classifier train --data {data}` or set "
                        "metrics.classifier")
    # getattr: `model.conditional` arrives with the conditioning work; until then no
    # generator is conditional.
    if "labels" in metric.needs and not getattr(cfg.model, "conditional", False):
        raise UserError(f"train.objective {metric.name} needs a conditional generator "
                        "(model.conditional=true)")
