"""Sweep definitions (`sweeps/*.yaml`): a small closed vocabulary, parsed and checked.

A spec names a preset (`base`), fixed dotted `overrides`, a `search` space over dotted
config keys (`audiogan.sweep.space`: domains, conditional parameters, the paper's
baseline point), the objectives and the rule that picks one answer among them
(`audiogan.sweep.objectives`), the trial budget in critic steps (ASHA's time unit, so
trials with different `loss.n_critic` get equal compute), how many trials run, and the
optional `final:` stage (`FinalSpec`). Unknown keys are `UserError`s. `trial_config`
turns a spec plus one trial's sampled values into the resolved `Config` that the trial
trains with: the one place that rule lives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any, Mapping

import yaml

from audiogan import storage
from audiogan.config import Config, resolve
from audiogan.errors import UserError
from audiogan.sweep import space
from audiogan.sweep.objectives import (Objective, Selection, objectives_of, parse_objectives,
                                       parse_selection, selection_of)

SAMPLERS = ("tpe", "nsga2", "random")


@dataclasses.dataclass(frozen=True)
class FinalSpec:
    """The `final:` section: the last stage of a sweep (`audiogan.sweep.final`)."""
    top_k: int = 3              # trials scored again (plus the baseline trial)
    n: int = 2000               # generated examples per final evaluation
    ndb_k: int = 50             # NDB bins (k-means on the training split)
    bootstrap: int = 1000       # bootstrap draws per interval
    confidence: float = 0.95
    replicates: int = 3         # new seeds for the best and the baseline config; 0 = none
    eval_seed: int = 2_000_000  # sample seeds eval_seed .. eval_seed + n - 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    base: str
    search: dict[str, dict[str, Any]]
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    metric: str = "eval/ndb"    # the first objective (kept for single-objective specs)
    mode: str = ""              # "" = the metric's direction (audiogan.metrics.registry)
    objectives: list[dict[str, str]] = dataclasses.field(default_factory=list)
    select: dict[str, Any] = dataclasses.field(default_factory=lambda: {"rule": "first"})
    num_samples: int = 8
    max_concurrent_trials: int = 2
    workers: int = 1
    gpu: bool = False
    max_critic_steps: int = 1000
    grace_critic_steps: int = 250
    reduction_factor: int = 2
    eval_critic_steps: int = 0  # 0 = grace_critic_steps (evaluate at every ASHA rung)
    sampler: str = "tpe"
    optuna_seed: int | None = None  # None = derived from the sweep name (`derived_seed`)
    baseline: bool = False
    optuna_storage: str = ""  # a database URL; empty = SQLite (audiogan.sweep.study)
    final: dict[str, Any] | None = None

    @property
    def eval_every_critic_steps(self) -> int:
        return self.eval_critic_steps or self.grace_critic_steps

    @property
    def objective_list(self) -> tuple[Objective, ...]:
        return objectives_of(self.objectives)

    @property
    def selection(self) -> Selection:
        return selection_of(self.select)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def final_spec(self) -> FinalSpec | None:
        return None if self.final is None else FinalSpec(**self.final)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(SweepSpec)}
_INTS = ("num_samples", "max_concurrent_trials", "workers", "max_critic_steps",
         "grace_critic_steps", "reduction_factor", "eval_critic_steps")
_FINAL_INTS = ("top_k", "n", "ndb_k", "bootstrap", "replicates", "eval_seed")


def derived_seed(name: str) -> int:
    """The Optuna sampler seed of a sweep that sets none: a stable hash of its name, so two
    sweeps draw the same points only when asked to (same name, or `optuna_seed:` set)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 2**31


def _int(where: str, value: Any) -> int:
    number = space.number(where, value)
    if int(number) != number:
        raise UserError(f"{where} must be an integer, got {value!r}")
    return int(number)


def parse_final(raw: Any, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: final must be a mapping (top_k, n, ndb_k, bootstrap, "
                        "confidence, replicates, eval_seed)")
    known = {f.name for f in dataclasses.fields(FinalSpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"unknown key 'final.{unknown[0]}' in {where} (known: {', '.join(sorted(known))})")
    kw = {k: _int(f"final.{k}", v) if k in _FINAL_INTS else space.number(f"final.{k}", v)
          for k, v in raw.items()}
    final = FinalSpec(**kw)
    checks = [
        (final.top_k >= 1, "final.top_k must be >= 1"),
        (final.ndb_k >= 2, "final.ndb_k must be >= 2"),
        (final.n >= final.ndb_k, "final.n must be >= final.ndb_k"),
        (final.bootstrap >= 100, "final.bootstrap must be >= 100 draws"),
        (0.5 < final.confidence < 1, "final.confidence must be in (0.5, 1)"),
        (final.replicates == 0 or final.replicates >= 3,
         "final.replicates must be 0 (none) or >= 3: fewer seeds give no usable interval"),
        (final.eval_seed >= 0, "final.eval_seed must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return final.to_dict()


def parse_spec(raw: Any, where: str = "sweep spec") -> SweepSpec:
    if not isinstance(raw, Mapping):
        raise UserError(f"{where} must be a YAML mapping")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise UserError(f"unknown key '{unknown[0]}' in {where} "
                        f"(known: {', '.join(sorted(_FIELDS))})")
    for required in ("base", "search"):
        if required not in raw:
            raise UserError(f"{where} needs '{required}'")
    kw: dict[str, Any] = dict(raw)
    if not isinstance(kw["search"], Mapping) or not kw["search"]:
        raise UserError(f"{where}: search must be a non-empty mapping of dotted keys")
    kw["search"] = {str(k): space.parse_domain(str(k), v) for k, v in kw["search"].items()}
    space.check_conditions(kw["search"])
    overrides = kw.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise UserError(f"{where}: overrides must be a mapping of dotted keys")
    kw["overrides"] = {str(k): v for k, v in overrides.items()}
    for name in _INTS:
        if name in kw:
            kw[name] = _int(name, kw[name])
    if kw.get("optuna_seed") is not None:
        kw["optuna_seed"] = _int("optuna_seed", kw["optuna_seed"])
    for name in ("gpu", "baseline"):
        if name in kw and not isinstance(kw[name], bool):
            raise UserError(f"{name} must be true or false, got {kw[name]!r}")
    for name in ("base", "metric", "mode", "optuna_storage", "sampler"):
        if name in kw and not isinstance(kw[name], str):
            raise UserError(f"{name} must be a string, got {kw[name]!r}")
    if kw.get("sampler", "tpe") not in SAMPLERS:
        raise UserError(f"sampler must be one of {', '.join(SAMPLERS)}, got {kw['sampler']!r}")
    family = resolve(kw["base"]).model.family
    kw["objectives"] = parse_objectives(kw.get("objectives") or None, kw.get("metric"),
                                        kw.get("mode"), family, where)
    kw["metric"], kw["mode"] = kw["objectives"][0]["metric"], kw["objectives"][0]["mode"]
    kw["select"] = parse_selection(kw.get("select"), objectives_of(kw["objectives"]), where)
    kw["final"] = parse_final(kw.get("final"), where)
    spec = SweepSpec(**kw)
    _check(spec)
    return spec


def _check(spec: SweepSpec) -> None:
    checks = [
        (spec.num_samples >= 1, "num_samples must be >= 1"),
        (spec.max_concurrent_trials >= 1, "max_concurrent_trials must be >= 1"),
        (spec.workers >= 1, "workers must be >= 1"),
        (spec.grace_critic_steps >= 1, "grace_critic_steps must be >= 1"),
        (spec.max_critic_steps >= spec.grace_critic_steps,
         "max_critic_steps must be >= grace_critic_steps"),
        (spec.reduction_factor >= 2, "reduction_factor must be >= 2"),
        (spec.eval_critic_steps >= 0, "eval_critic_steps must be >= 0"),
        ("compute.workers" not in spec.overrides and "compute.gpu" not in spec.overrides,
         "set workers/gpu with the top-level keys, not overrides"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    for key in spec.search:
        if key in spec.overrides:
            raise UserError(f"'{key}' is both searched and fixed in overrides")
    if spec.baseline:
        _check_baseline(spec)
    # Resolve every branch once with probe values: unknown keys, wrong types and bad ranges
    # fail here, before any cluster starts.
    for point in space.probe_points(spec.search):
        trial_config(spec, point)
    final = spec.final_spec
    if final is not None:
        cfg = probe_config(spec)
        train_seeds = range(cfg.metrics.eval_seed, cfg.metrics.eval_seed + cfg.metrics.n_samples)
        if final.eval_seed < train_seeds.stop and train_seeds.start < final.eval_seed + final.n:
            raise UserError(f"final.eval_seed {final.eval_seed} + n {final.n} overlaps the "
                            f"training-time evaluation seeds {train_seeds.start}.."
                            f"{train_seeds.stop - 1}: the final evaluation needs unseen seeds")


def _check_baseline(spec: SweepSpec) -> None:
    base = resolve(spec.base, spec.overrides)
    for key, value in baseline_point(spec).items():
        if not space.inside(spec.search[key], value):
            raise UserError(f"baseline: the paper's {key}={value!r} lies outside search.{key}")
    for key, value in space.PAPER_RECIPE.items():
        if key in spec.search:
            continue
        section, name = key.split(".", 1)
        if getattr(getattr(base, section), name) != value:
            raise UserError(f"baseline: {key} is fixed to {getattr(getattr(base, section), name)!r}"
                            f", not the paper's {value!r}, so the baseline trial would not be "
                            "the paper's recipe: search it (with the paper's value among its "
                            "values) or set baseline: false")


def _base_value(spec: SweepSpec):
    base = resolve(spec.base, spec.overrides)

    def value(key: str) -> Any:
        section, name = key.split(".", 1)
        return getattr(getattr(base, section), name)

    return value


def baseline_point(spec: SweepSpec) -> dict[str, Any]:
    """The paper's recipe for the searched keys active under it; other searched keys keep
    the base value."""
    return space.baseline_point(spec.search, _base_value(spec))


def trial_config(spec: SweepSpec, params: Mapping[str, Any]) -> Config:
    """The resolved config of one trial: base + overrides + sampled values + budget.

    The budget is in critic steps: total_steps = ceil(max_critic_steps / n_critic) and the
    evaluation (= checkpoint) interval likewise, so every trial evaluates at the same
    critic-step milestones that ASHA's rungs use. `params` may hold `train.seed` (a
    replicate of the final stage)."""
    cfg = resolve(spec.base, {**spec.overrides, **dict(params),
                              "compute.workers": spec.workers, "compute.gpu": spec.gpu})
    n_critic = cfg.loss.n_critic
    budget = {
        "train.total_steps": math.ceil(spec.max_critic_steps / n_critic),
        "train.eval_every": math.ceil(spec.eval_every_critic_steps / n_critic),
        "train.ckpt_every": 0,
        "train.objective": spec.metric,
        "train.objective_mode": spec.mode,
    }
    return cfg.override(budget).validate()


def probe_config(spec: SweepSpec) -> Config:
    """A trial config at probe values (the first choices, the low bounds): what every trial
    shares (resources, keep_best, retries, the training seed)."""
    return trial_config(spec, next(space.probe_points(spec.search)))


def load_spec(path: str) -> SweepSpec:
    return parse_spec(storage.read_yaml(path, "sweep spec"), where=f"'{path}'")


def spec_to_yaml(spec: SweepSpec, extra: Mapping[str, Any] | None = None) -> str:
    doc = spec.to_dict()
    if extra:
        doc["resolved"] = dict(extra)
    return yaml.safe_dump(doc, sort_keys=False)
