"""Sweep definitions (`sweeps/*.yaml`): a small closed vocabulary, parsed and checked.

A spec names a preset (`base`), fixed dotted `overrides`, a `search` space over dotted
config keys, the objective, the trial budget in critic steps (ASHA's time unit, so trials
with different `loss.n_critic` get equal compute) and how many trials run. Unknown keys are
`UserError`s. `trial_config` turns a spec plus one trial's sampled values into the
resolved `Config` that the trial trains with: the one place that rule lives.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import yaml

from audiogan import storage
from audiogan.config import Config, resolve
from audiogan.errors import UserError
from audiogan.metrics.registry import check_objective

SEARCH_TYPES = ("loguniform", "uniform", "int", "choice")
# WaveGAN's defaults: the baseline trial every real-data sweep is set against.
WAVEGAN_DEFAULTS = {"optim.lr_g": 1e-4, "optim.lr_d": 1e-4, "loss.n_critic": 5,
                    "loss.gp_weight": 10.0}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    base: str
    search: dict[str, dict[str, Any]]
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    metric: str = "eval/ndb"
    mode: str = ""  # "" = the metric's direction (audiogan.metrics.registry)
    num_samples: int = 8
    max_concurrent_trials: int = 2
    workers: int = 1
    gpu: bool = False
    max_critic_steps: int = 1000
    grace_critic_steps: int = 250
    reduction_factor: int = 2
    eval_critic_steps: int = 0  # 0 = grace_critic_steps (evaluate at every ASHA rung)
    optuna_seed: int = 0
    baseline: bool = False
    optuna_storage: str = ""  # a database URL; empty = SQLite optuna.db in the sweep dir

    @property
    def eval_every_critic_steps(self) -> int:
        return self.eval_critic_steps or self.grace_critic_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(SweepSpec)}
_INTS = ("num_samples", "max_concurrent_trials", "workers", "max_critic_steps",
         "grace_critic_steps", "reduction_factor", "eval_critic_steps", "optuna_seed")


def _number(where: str, value: Any) -> float:
    # YAML 1.1 reads "1e-4" as a string; accept it.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, got {value!r}")
    return value


def _parse_domain(key: str, raw: Any) -> dict[str, Any]:
    where = f"search.{key}"
    if not isinstance(raw, Mapping):
        raise UserError(f"{where} must be a mapping like {{type: loguniform, low: 1e-5, high: 1e-3}}")
    kind = raw.get("type")
    if kind not in SEARCH_TYPES:
        raise UserError(f"{where}.type must be one of {', '.join(SEARCH_TYPES)}, got {kind!r}")
    allowed = {"type", "values"} if kind == "choice" else {"type", "low", "high"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise UserError(f"unknown key '{where}.{extra[0]}' (a {kind} takes {', '.join(sorted(allowed))})")
    if kind == "choice":
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}.values must be a non-empty list")
        return {"type": kind, "values": list(values)}
    if "low" not in raw or "high" not in raw:
        raise UserError(f"{where} needs low and high")
    low, high = _number(f"{where}.low", raw["low"]), _number(f"{where}.high", raw["high"])
    if kind == "int":
        if int(low) != low or int(high) != high:
            raise UserError(f"{where}: int bounds must be integers")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if not low < high:
        raise UserError(f"{where}: low must be < high")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{where}: loguniform needs low > 0")
    return {"type": kind, "low": low, "high": high}


def _inside(domain: dict[str, Any], value: Any) -> bool:
    if domain["type"] == "choice":
        return value in domain["values"]
    return domain["low"] <= value <= domain["high"]


def _probe_value(domain: dict[str, Any]) -> Any:
    return domain["values"][0] if domain["type"] == "choice" else domain["low"]


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
    kw["search"] = {str(k): _parse_domain(str(k), v) for k, v in kw["search"].items()}
    overrides = kw.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise UserError(f"{where}: overrides must be a mapping of dotted keys")
    kw["overrides"] = {str(k): v for k, v in overrides.items()}
    for name in _INTS:
        if name in kw:
            value = _number(name, kw[name])
            if int(value) != value:
                raise UserError(f"{name} must be an integer, got {kw[name]!r}")
            kw[name] = int(value)
    for name in ("gpu", "baseline"):
        if name in kw and not isinstance(kw[name], bool):
            raise UserError(f"{name} must be true or false, got {kw[name]!r}")
    for name in ("base", "metric", "mode", "optuna_storage"):
        if name in kw and not isinstance(kw[name], str):
            raise UserError(f"{name} must be a string, got {kw[name]!r}")
    family = resolve(kw["base"]).model.family
    kw["mode"] = check_objective(kw.get("metric", SweepSpec.metric), kw.get("mode", ""), family,
                                 where=f"{where}: metric")
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
        for key, value in baseline_point(spec).items():
            if not _inside(spec.search[key], value):
                raise UserError(f"baseline: WaveGAN's {key}={value} lies outside search.{key}")
    # Resolve once with probe values: unknown keys, wrong types and bad ranges fail here,
    # before any cluster starts.
    probe_config(spec)


def same_point(params: Mapping[str, Any], point: Mapping[str, Any]) -> bool:
    """True when sampled values equal a point (numbers compared to 1e-9 relative)."""
    return params.keys() == point.keys() and all(
        math.isclose(float(params[k]), float(point[k]), rel_tol=1e-9)
        if isinstance(point[k], (int, float)) else params[k] == point[k] for k in point)


def baseline_point(spec: SweepSpec) -> dict[str, Any]:
    """WaveGAN's defaults for the searched keys; other searched keys keep the base value."""
    base = resolve(spec.base, spec.overrides)
    point: dict[str, Any] = {}
    for key in spec.search:
        if key in WAVEGAN_DEFAULTS:
            point[key] = WAVEGAN_DEFAULTS[key]
        else:
            section, name = key.split(".", 1)
            point[key] = getattr(getattr(base, section), name)
    return point


def trial_config(spec: SweepSpec, params: Mapping[str, Any]) -> Config:
    """The resolved config of one trial: base + overrides + sampled values + budget.

    The budget is in critic steps: total_steps = ceil(max_critic_steps / n_critic) and the
    evaluation (= checkpoint) interval likewise, so every trial evaluates at the same
    critic-step milestones that ASHA's rungs use.
    """
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
    """A trial config at probe values (the first choice, the low bounds): what every trial
    shares (resources, keep_best, retries)."""
    return trial_config(spec, {k: _probe_value(d) for k, d in spec.search.items()})


def load_spec(path: str) -> SweepSpec:
    if not storage.exists(path):
        raise UserError(f"sweep spec '{path}' not found")
    try:
        raw = yaml.safe_load(storage.read_bytes(path).decode())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise UserError(f"sweep spec '{path}' is not valid YAML: {first}") from None
    return parse_spec(raw, where=f"'{path}'")


def spec_to_yaml(spec: SweepSpec, extra: Mapping[str, Any] | None = None) -> str:
    doc = spec.to_dict()
    if extra:
        doc["resolved"] = dict(extra)
    return yaml.safe_dump(doc, sort_keys=False)

