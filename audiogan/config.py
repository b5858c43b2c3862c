"""Typed run configuration: frozen dataclasses, presets, dotted overrides.

`audiogan.builders` turns a `Config` into objects; modules take explicit keyword
arguments. Configs cross process boundaries (Ray workers, Tune trials) as plain dicts via
`to_dict`/`from_dict`, which round-trip exactly. Unknown keys and type mismatches are
`UserError`s naming the key.

Every dict carries `schema_version`. Files written before it existed (version 1: the
`config.json` in checkpoints, `config.yaml` in run directories, `best_config.yaml`) load
through `migrate`: version 1 had spectrogram fields in `data` that could not change
anything (the networks fix 128 x 128, the fast Griffin-Lim needs hop = n_fft / 2), so
they are dropped; setting one now is an error that says why. Versions 1 and 2 predate
`data.griffin_lim_momentum`: they ran the plain Griffin-Lim, so they load with momentum 0
(their samples and listening metrics stay what they were), not with today's default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable, Mapping

import yaml

from audiogan.errors import UserError

FAMILIES = ("pianogan", "spectogan")
UPSAMPLES = ("transpose", "nearest")
PITCH_ENCODINGS = ("scalar", "onehot")  # audiogan.pitch
LOSS_KINDS = ("wgan-gp", "r1")
AUGMENT_OPS = ("shift", "cutout", "mask")
SCHEMA_VERSION = 3
PRECISIONS = ("fp32", "bf16", "fp16")
REPRESENTATIONS = ("log_magnitude", "complex")  # audiogan.data.complex_spec
# Fixed by the data contract (DESIGN.md "Spectrograms"), the networks and the Griffin-Lim:
# removed from `data` in schema 2; the value each had to be.
FIXED_SPECTROGRAM = {"sample_rate": 16000, "clip_samples": 16384, "n_fft": 256,
                     "hop_length": 128, "n_bins": 128, "n_frames": 128, "log_eps": 1e-6}


@dataclass(frozen=True)
class DataConfig:
    # Notes (DESIGN.md "Notes"): windows of `window` notes, hop `hop` in train.
    window: int = 256
    hop: int = 64
    pitch_center: float = 64.5
    pitch_scale: float = 43.5
    pitch_min: int = 21
    pitch_max: int = 108
    time_eps_s: float = 1e-3
    time_max_s: float = 8.0
    apply_pedal: bool = False
    # Spectrograms: WaveGAN's t_to_f is fixed (FIXED_SPECTROGRAM, audiogan.data.spectro).
    norm_clip_std: float = 3.0
    griffin_lim_iters: int = 16
    # Fast Griffin-Lim (Perraudin et al. 2013, librosa's form; audiogan.data.spectro):
    # 0 is WaveGAN's plain algorithm. The default is measured: results/complex/README.md.
    griffin_lim_momentum: float = 0.99
    # SpectoGAN's input: "log_magnitude" [128, 128] or "complex" [2, 128, 128] (real and
    # imaginary STFT, inverted exactly; `preprocess --representation complex`).
    representation: str = "log_magnitude"
    # PianoGAN composer classes (model.conditional; audiogan.data.labels). MAESTRO's
    # composers have a long tail: a few (Chopin, Liszt, Schubert, Beethoven, Bach, ...)
    # hold most performances, many have one or two pieces. Eight classes keep a grid of
    # samples readable; 200 training windows at hop 64 (~13k new notes, a few
    # performances) is about the least from which a class embedding learns a style rather
    # than one piece. The rest is `other`.
    n_composers: int = 8
    min_class_windows: int = 200


@dataclass(frozen=True)
class ModelConfig:
    family: str = "pianogan"
    d: int = 64
    latent_dim: int = 100
    phase_shuffle: int = 2
    conditional: bool = False  # label embedding in G, projection critic (audiogan.models)
    upsample: str = "transpose"  # or "nearest": nearest-neighbour + convolution
    # PianoGAN's pitch channel: "scalar" (the paper: one scaled value, rounded) or "onehot"
    # (a softmax over data.pitch_min..pitch_max; audiogan.pitch).
    pitch: str = "scalar"


@dataclass(frozen=True)
class LossConfig:
    kind: str = "wgan-gp"  # or "r1": non-saturating loss + R1 penalty (audiogan.wgan)
    gp_weight: float = 10.0
    r1_weight: float = 10.0  # gamma: the penalty is gamma / 2 * E ||grad D(x_real)||^2
    # Lazy R1 (StyleGAN2): the penalty on every r1_every-th critic update only, weighted by
    # r1_every so its average pull is unchanged (at 4: ~25 % off a SpectoGAN CPU step).
    r1_every: int = 1
    n_critic: int = 5


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    batch_size: int = 64  # global, split across workers


@dataclass(frozen=True)
class TrainConfig:
    total_steps: int = 100_000  # generator updates
    eval_every: int = 1000
    ckpt_every: int = 0  # 0 means "= eval_every"
    # Reports (losses, progress) go out every `report_every_s` seconds of wall time, decided
    # by rank 0 and shared with every rank; `report_every` > 0 reports every N steps instead.
    # Evaluations and checkpoints keep their own step schedule either way.
    report_every: int = 0
    report_every_s: float = 30.0
    # Stop (with a final checkpoint) once the run has trained this many seconds of wall time,
    # evaluation and checkpoint writing excluded, summed over resumed attempts; 0 = off.
    # Equal-time comparisons (ablations) use it; train.total_steps still caps the run.
    time_budget_s: float = 0.0
    seed: int = 0
    keep_best: int = 3  # checkpoints kept by the objective, plus the latest
    objective: str = "eval/ndb"
    objective_mode: str = ""  # "" = the metric's direction (audiogan.metrics.registry)
    max_failures: int = 3
    # Generator weight average for evaluation and sampling (audiogan.train.ema): 0 = off.
    ema_decay: float = 0.0
    ema_rampup: float = 0.05  # half-life <= ema_rampup x steps so far (StyleGAN); 0 = none
    augment: str = ""  # DiffAugment ops, comma list of shift,cutout,mask (audiogan.augment)


@dataclass(frozen=True)
class ComputeConfig:
    workers: int = 1
    gpu: bool = False
    cpus_per_worker: int = 1
    # fp32 | bf16 | fp16: autocast dtype of the networks (the penalty's norm stays fp32;
    # fp16 adds gradient scaling and needs a GPU; bf16/fp16 also allow TF32 on GPUs).
    precision: str = "fp32"
    channels_last: bool = False   # SpectoGAN's 2-D networks in NHWC memory format
    compile: bool = False         # torch.compile the generator, and the critic for the
                                  # generator step (the penalty's double backward stays eager)


@dataclass(frozen=True)
class MetricsConfig:
    ndb_k: int = 50
    n_samples: int = 2000
    classifier: str = ""
    eval_seed: int = 1_000_000  # sample seeds eval_seed .. eval_seed + n_samples - 1
    # Complex runs: the log-magnitude dataset of the same clips whose statistics, NDB bins
    # and digit classifier score them (generated audio from the exact inverse, analysed
    # as log magnitudes), so their metrics compare with log-magnitude runs.
    reference_data: str = ""


@dataclass(frozen=True)
class Config:
    preset: str = "pianogan"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    # -- views ----------------------------------------------------------------------------
    @property
    def ckpt_every(self) -> int:
        return self.train.ckpt_every or self.train.eval_every

    @property
    def augment_ops(self) -> tuple[str, ...]:
        """`train.augment` as a tuple of op names ("" -> ())."""
        return tuple(op.strip() for op in self.train.augment.split(",") if op.strip())

    @property
    def objective_mode(self) -> str:
        """"min" or "max" for `train.objective` (its registry direction)."""
        from audiogan.metrics.registry import direction

        return self.train.objective_mode or direction(self.train.objective)

    # -- conversions ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Config":
        if not isinstance(d, Mapping):
            raise UserError(f"config must be a mapping, got {type(d).__name__}")
        kwargs: dict[str, Any] = {}
        for key, value in migrate(d).items():
            if key not in _SECTIONS and key != "preset":
                raise UserError(f"unknown config key '{key}'")
            if key == "preset":
                kwargs[key] = _coerce("preset", str, value)
                continue
            if not isinstance(value, Mapping):
                raise UserError(f"config section '{key}' must be a mapping")
            section_cls = _SECTIONS[key]
            known = {f.name: f for f in fields(section_cls)}
            sub = {}
            for k, v in value.items():
                if k not in known:
                    raise UserError(_unknown_key_message(key, k))
                sub[k] = _coerce(f"{key}.{k}", known[k].type, v)
            kwargs[key] = section_cls(**sub)
        return cls(**kwargs)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def hash(self) -> str:
        """Short stable hash of the resolved config (recorded in samples.json, run dirs)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def override(self, assignments: Iterable[str] | Mapping[str, Any]) -> "Config":
        """Apply dotted overrides: ["optim.lr_g=2e-4", ...] or {"optim.lr_g": 2e-4}."""
        items = (
            list(assignments.items())
            if isinstance(assignments, Mapping)
            else [parse_assignment(a) for a in assignments]
        )
        cfg = self
        for dotted, value in items:
            cfg = cfg._set(dotted, value)
        return cfg

    def _set(self, dotted: str, value: Any) -> "Config":
        parts = dotted.split(".")
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            if dotted == "preset":
                raise UserError("'preset' cannot be overridden; pass another preset instead")
            raise UserError(f"unknown config key '{dotted}' (expected section.key)")
        section, key = parts
        known = {f.name: f for f in fields(_SECTIONS[section])}
        if key not in known:
            raise UserError(_unknown_key_message(section, key))
        typed = _coerce(dotted, known[key].type, value)
        return replace(self, **{section: replace(getattr(self, section), **{key: typed})})

    # -- validation -----------------------------------------------------------------------
    def validate(self) -> "Config":
        """Check ranges and divisibility; returns self so calls chain."""
        checks = [
            (self.model.family in FAMILIES, f"model.family must be one of {FAMILIES}"),
            (self.model.d >= 1, "model.d must be >= 1"),
            (self.model.latent_dim >= 1, "model.latent_dim must be >= 1"),
            (self.model.phase_shuffle >= 0, "model.phase_shuffle must be >= 0"),
            (self.loss.gp_weight >= 0, "loss.gp_weight must be >= 0"),
            (self.loss.n_critic >= 1, "loss.n_critic must be >= 1"),
            (self.optim.lr_g > 0 and self.optim.lr_d > 0, "optim.lr_g and optim.lr_d must be > 0"),
            (0 <= self.optim.beta1 < 1 and 0 <= self.optim.beta2 < 1,
             "optim.beta1 and optim.beta2 must be in [0, 1)"),
            (self.optim.batch_size >= 1, "optim.batch_size must be >= 1"),
            (self.compute.workers >= 1, "compute.workers must be >= 1"),
            (self.compute.cpus_per_worker >= 1, "compute.cpus_per_worker must be >= 1"),
            (self.compute.precision in PRECISIONS,
             f"compute.precision must be one of {', '.join(PRECISIONS)}"),
            (self.compute.precision != "fp16" or self.compute.gpu,
             "compute.precision=fp16 needs a GPU (compute.gpu=true): CPU autocast runs bf16"),
            (not self.compute.channels_last or self.model.family == "spectogan",
             "compute.channels_last applies to SpectoGAN's 2-D networks only"),
            (self.optim.batch_size % self.compute.workers == 0,
             f"optim.batch_size ({self.optim.batch_size}) must be divisible by "
             f"compute.workers ({self.compute.workers})"),
            (self.train.total_steps >= 1, "train.total_steps must be >= 1"),
            (self.train.eval_every >= 1, "train.eval_every must be >= 1"),
            (self.train.ckpt_every >= 0, "train.ckpt_every must be >= 0 (0 = eval_every)"),
            (self.train.report_every >= 0, "train.report_every must be >= 0 (0 = by time)"),
            (self.train.time_budget_s >= 0, "train.time_budget_s must be >= 0 (0 = off)"),
            (self.train.report_every > 0 or self.train.report_every_s > 0,
             "train.report_every_s must be > 0 when train.report_every is 0"),
            (self.train.keep_best >= 1, "train.keep_best must be >= 1"),
            (self.train.max_failures >= 0, "train.max_failures must be >= 0"),
            (self.metrics.ndb_k >= 2, "metrics.ndb_k must be >= 2"),
            (self.metrics.n_samples >= self.metrics.ndb_k,
             "metrics.n_samples must be >= metrics.ndb_k"),
            (self.data.window >= 1 and self.data.hop >= 1, "data.window and data.hop must be >= 1"),
            (self.data.hop <= self.data.window, "data.hop must be <= data.window"),
            (21 <= self.data.pitch_min <= self.data.pitch_max <= 127,
             "data.pitch_min..pitch_max must lie in 21..127"),
            (self.data.time_max_s > 0 and self.data.time_eps_s > 0,
             "data.time_max_s and data.time_eps_s must be > 0"),
            (self.data.griffin_lim_iters >= 1, "data.griffin_lim_iters must be >= 1"),
            (0 <= self.data.griffin_lim_momentum <= 0.99,
             "data.griffin_lim_momentum must be in [0, 0.99] (0 = plain Griffin-Lim)"),
            (self.data.representation in REPRESENTATIONS,
             f"data.representation must be one of {', '.join(REPRESENTATIONS)}"),
            (self.data.representation == "log_magnitude" or self.model.family == "spectogan",
             "data.representation=complex is a spectogan representation"),
            (self.data.n_composers >= 1, "data.n_composers must be >= 1"),
            (self.data.min_class_windows >= 1, "data.min_class_windows must be >= 1"),
            (self.model.upsample in UPSAMPLES, f"model.upsample must be one of {UPSAMPLES}"),
            (self.model.pitch in PITCH_ENCODINGS,
             f"model.pitch must be one of {', '.join(PITCH_ENCODINGS)}"),
            (self.model.pitch == "scalar" or self.model.family == "pianogan",
             "model.pitch=onehot is a pianogan option"),
            (self.loss.kind in LOSS_KINDS, f"loss.kind must be one of {LOSS_KINDS}"),
            (self.loss.r1_weight >= 0, "loss.r1_weight must be >= 0"),
            (self.loss.r1_every >= 1, "loss.r1_every must be >= 1 (1 = every critic update)"),
            (0 <= self.train.ema_decay < 1, "train.ema_decay must be in [0, 1) (0 = off)"),
            (self.train.ema_rampup >= 0, "train.ema_rampup must be >= 0 (0 = no warm-up)"),
            (all(op in AUGMENT_OPS for op in self.augment_ops),
             f"train.augment must be a comma list of {', '.join(AUGMENT_OPS)} (or empty), got "
             f"'{self.train.augment}'"),
        ]
        if self.model.family == "pianogan":
            # Three stride-4 upsamplings from length 4: the window is fixed by the network.
            checks.append((self.data.window == 256,
                           "data.window must be 256 for pianogan (4 x 4^3 from the generator)"))
            checks.append(("mask" not in self.augment_ops,
                           "train.augment 'mask' is time/frequency masking of spectrograms; "
                           "pianogan's notes have no frequency axis (use shift,cutout)"))
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        from audiogan.metrics.registry import check_objective

        check_objective(self.train.objective, self.train.objective_mode, self.model.family,
                        where="train.objective")
        return self


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "compute": ComputeConfig,
    "metrics": MetricsConfig,
}

_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def migrate(d: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict of any schema version, as the current version (without the key)."""
    out = dict(d)
    version = out.pop("schema_version", 1)
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise UserError(f"config schema_version {version!r} is not one this audiogan reads "
                        f"(1..{SCHEMA_VERSION})")
    if version == 1 and isinstance(out.get("data"), Mapping):
        data = dict(out["data"])
        for key, fixed in FIXED_SPECTROGRAM.items():
            value = data.pop(key, fixed)
            if value != fixed:
                raise UserError(f"config data.{key}={value!r}: version-1 configs could hold "
                                f"it, but only {fixed!r} was ever trainable")
        out["data"] = data
    if version < 3:
        # Before the key existed every run used the plain algorithm (module docstring).
        data = dict(out.get("data") or {})
        data.setdefault("griffin_lim_momentum", 0.0)
        out["data"] = data
    return out


def _unknown_key_message(section: str, key: str) -> str:
    if section == "data" and key in FIXED_SPECTROGRAM:
        return (f"config key 'data.{key}' is fixed ({FIXED_SPECTROGRAM[key]!r}): the "
                "networks make 128 x 128 spectrograms of WaveGAN's t_to_f (n_fft 256, hop 128) "
                "and the fast Griffin-Lim relies on hop = n_fft / 2")
    return f"unknown config key '{section}.{key}'"


def _coerce(key: str, declared: Any, value: Any) -> Any:
    """Check `value` against the declared field type; accept YAML-parsed strings."""
    typ = _TYPES[declared] if isinstance(declared, str) else declared
    if isinstance(value, str) and typ is not str:
        value = _parse_scalar(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if value is None:
            return ""
    raise UserError(f"config key '{key}' expects {typ.__name__}, got {value!r}")


def _parse_scalar(text: str) -> Any:
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # yaml reads "1e-4" as a string (YAML 1.1 wants a dot); accept it as a float.
    if isinstance(parsed, str):
        try:
            return float(parsed)
        except ValueError:
            return parsed
    return parsed


def parse_assignment(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise UserError(f"override '{text}' must look like section.key=value")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"override '{text}' has no key")
    return key, value.strip()


# -- presets ------------------------------------------------------------------------------
def _preset_overrides() -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {
        "pianogan": {"model.family": "pianogan"},
        # NHWC: oneDNN's transposed convolutions run faster (generator ~0.76 of the matmul
        # rate against ~0.68, `bench sample`; a spectogan-cpu step 0.49 s against 0.51 s
        # here) and cuDNN's mixed-precision ones use tensor cores; same outputs.
        "spectogan": {"model.family": "spectogan", "compute.channels_last": True},
        # Small widths and batches so a 2-core laptop makes progress; the real-data runs here.
        # They report by time (train.report_every_s): each Train report costs about a second
        # here, whatever the step time.
        # The paper's recipe: in the quality ablation no step moved PianoGAN beyond one
        # seed's noise (NDB 0.86-0.98 against 0.92, pitch classes uniform in every row;
        # one-hot pitch 0.94), so nothing is bought with the extra cost (d 16: 2x a step).
        "pianogan-cpu": {
            "model.family": "pianogan", "model.d": 8, "optim.batch_size": 32,
            "train.total_steps": 6000, "train.eval_every": 500,
            "metrics.n_samples": 500, "metrics.ndb_k": 20, "compute.cpus_per_worker": 1,
        },
        # The recipe of the quality ablation's best row (results/quality/ablation.md: 15 min
        # on FSDD, scored after the audio round trip), unconditional as every preset is:
        # non-saturating loss + R1 (gamma 1, n_critic 1, Adam 2e-4, betas 0/0.99) took IS
        # from 0.35 to 0.67 of real, the one large step; d 8 (0.27 -> 0.31), EMA (-> 0.36)
        # and augmentation (conditional accuracy 0.31 -> 0.42) were the smaller ones.
        # Nearest upsampling is part of that row although under WGAN-GP it scored lower
        # (0.21); R1 with transposed convolutions was not measured. ~3 steps/s on one
        # thread here: 3,000 steps ~ 16 min. Those rows were conditional: for 60 min this
        # recipe reached 0.97 of real IS conditional but 0.38 unconditional (the quality
        # plan's long runs), so turn on model.conditional where the data has labels.
        "spectogan-cpu": {
            "model.family": "spectogan", "model.d": 8, "optim.batch_size": 16,
            "model.upsample": "nearest", "loss.kind": "r1", "loss.n_critic": 1,
            "loss.r1_weight": 1.0, "optim.lr_g": 2e-4, "optim.lr_d": 2e-4,
            "optim.beta1": 0.0, "optim.beta2": 0.99, "train.ema_decay": 0.999,
            "train.ema_rampup": 0.05, "train.augment": "shift,cutout,mask",
            "compute.channels_last": True,
            "train.total_steps": 3000, "train.eval_every": 1000,
            "metrics.n_samples": 500, "metrics.ndb_k": 20, "compute.cpus_per_worker": 1,
        },
    }
    # The same networks on the complex representation (two channels in and out; the
    # manifest's example shape sets them). metrics.reference_data names the log-magnitude
    # dataset that scores them (set it with --set; `audiogan train` asks for it).
    table["spectogan-complex"] = {**table["spectogan"], "data.representation": "complex"}
    table["spectogan-complex-cpu"] = {**table["spectogan-cpu"],
                                      "data.representation": "complex"}
    return table


PRESETS = tuple(_preset_overrides())


def preset(name: str) -> Config:
    table = _preset_overrides()
    if name not in table:
        raise UserError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})")
    return Config(preset=name).override(table[name]).validate()


def resolve(name: str, overrides: Iterable[str] | Mapping[str, Any] = ()) -> Config:
    """Preset + overrides, validated: the one way a run's config is made."""
    return preset(name).override(overrides).validate()
