"""The search space of a sweep: domains, conditional parameters, the paper's point.

    search:
      optim.lr_g:      {type: loguniform, low: 1.0e-5, high: 1.0e-3}
      loss.n_critic:   {type: int, low: 1, high: 10}              # inclusive
      model.upsample:  {type: choice, values: [transpose, nearest]}
      loss.kind:       {type: choice, values: [wgan-gp, r1]}
      loss.gp_weight:  {type: loguniform, low: 1, high: 100, when: {loss.kind: wgan-gp}}
      loss.r1_weight:  {type: loguniform, low: 0.1, high: 10, when: {loss.kind: r1}}

A parameter with `when: {KEY: VALUE or [VALUES]}` is sampled only when the choice
parameter KEY (listed above it) took one of those values; otherwise the trial does not have
it and its config keeps the base value. That is Optuna's define-by-run: `SearchSpace` is
the function Ray's `OptunaSearch` calls with each trial.

`model.d` cannot be searched: a critic step costs ~d^2, so trials of different widths
would get very different compute for the same critic-step budget (and ASHA would compare
them at equal critic steps, not equal cost). `train.seed` is the replicate axis of the
final stage (`audiogan.sweep.replicates`), never a searched value.

`PAPER_RECIPE` is WaveGAN's recipe: the baseline trial takes these values for every
searched key (the others keep the base value), and a baseline sweep may not fix a recipe
key to another value, so "beats the paper's recipe" keeps its meaning.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

from audiogan.errors import UserError

SEARCH_TYPES = ("loguniform", "uniform", "int", "choice")
PAPER_RECIPE: dict[str, Any] = {
    "optim.lr_g": 1e-4, "optim.lr_d": 1e-4, "optim.beta1": 0.5, "optim.beta2": 0.9,
    "loss.n_critic": 5, "loss.gp_weight": 10.0, "loss.kind": "wgan-gp",
    "model.upsample": "transpose", "model.conditional": False,
    "train.ema_decay": 0.0, "train.augment": "",
}
NOT_SEARCHABLE = {
    "model.d": "model.d cannot be searched: compute per critic step grows ~d^2, so trials "
               "would not get equal compute for the same critic-step budget (fix it in "
               "overrides: one width per sweep)",
    "train.seed": "train.seed cannot be searched: it is the replicate axis (final.replicates "
                  "trains the best configuration again with new seeds)",
    "compute.workers": "set workers with the top-level `workers:` key",
    "compute.gpu": "set gpu with the top-level `gpu:` key",
}


def number(where: str, value: Any) -> float:
    # YAML 1.1 reads "1e-4" as a string; accept it.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, got {value!r}")
    return value


def parse_domain(key: str, raw: Any) -> dict[str, Any]:
    where = f"search.{key}"
    if key in NOT_SEARCHABLE:
        raise UserError(f"{where}: {NOT_SEARCHABLE[key]}")
    if not isinstance(raw, Mapping):
        raise UserError(f"{where} must be a mapping like {{type: loguniform, low: 1e-5, high: 1e-3}}")
    kind = raw.get("type")
    if kind not in SEARCH_TYPES:
        raise UserError(f"{where}.type must be one of {', '.join(SEARCH_TYPES)}, got {kind!r}")
    allowed = {"type", "values", "when"} if kind == "choice" else {"type", "low", "high", "when"}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise UserError(f"unknown key '{where}.{extra[0]}' (a {kind} takes {', '.join(sorted(allowed))})")
    out: dict[str, Any] = {"type": kind}
    if kind == "choice":
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}.values must be a non-empty list")
        out["values"] = list(values)
    else:
        if "low" not in raw or "high" not in raw:
            raise UserError(f"{where} needs low and high")
        low, high = number(f"{where}.low", raw["low"]), number(f"{where}.high", raw["high"])
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
        out.update(low=low, high=high)
    if raw.get("when") is not None:
        out["when"] = _parse_when(where, raw["when"])
    return out


def _parse_when(where: str, raw: Any) -> dict[str, list[Any]]:
    if not isinstance(raw, Mapping) or not raw:
        raise UserError(f"{where}.when must map a choice parameter to its value(s), "
                        "e.g. {loss.kind: wgan-gp}")
    return {str(k): list(v) if isinstance(v, list) else [v] for k, v in raw.items()}


def check_conditions(search: Mapping[str, Mapping[str, Any]]) -> None:
    """Each `when` names a choice parameter listed earlier, with values it can take."""
    seen: dict[str, Mapping[str, Any]] = {}
    for key, d in search.items():
        for parent, values in (d.get("when") or {}).items():
            where = f"search.{key}.when.{parent}"
            if parent not in seen:
                raise UserError(f"{where}: '{parent}' must be a searched choice listed above "
                                f"'{key}'")
            if seen[parent]["type"] != "choice":
                raise UserError(f"{where}: '{parent}' must be a choice parameter")
            bad = [v for v in values if v not in seen[parent]["values"]]
            if bad:
                raise UserError(f"{where}: {bad[0]!r} is not one of {parent}'s values")
        seen[key] = d


def active(domain: Mapping[str, Any], chosen: Mapping[str, Any]) -> bool:
    """Is a parameter sampled, given the values chosen so far?"""
    return all(chosen.get(parent, _MISSING) in values
               for parent, values in (domain.get("when") or {}).items())


_MISSING = object()


def inside(domain: Mapping[str, Any], value: Any) -> bool:
    if domain["type"] == "choice":
        return value in domain["values"]
    return domain["low"] <= value <= domain["high"]


def first_value(domain: Mapping[str, Any]) -> Any:
    return domain["values"][0] if domain["type"] == "choice" else domain["low"]


def complete(search: Mapping[str, Mapping[str, Any]], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A point: `fixed` values where given, else each active parameter's first value."""
    point: dict[str, Any] = {}
    for key, d in search.items():
        if active(d, point):
            point[key] = fixed[key] if key in fixed else first_value(d)
    return point


def probe_points(search: Mapping[str, Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The first-value point, then one point per value of every choice (so each branch of
    a conditional space is resolved once before anything starts)."""
    yield complete(search, {})
    for key, d in search.items():
        if d["type"] == "choice":
            for value in d["values"][1:]:
                yield complete(search, {key: value})


def baseline_point(search: Mapping[str, Mapping[str, Any]], base_value) -> dict[str, Any]:
    """The paper's recipe on the searched keys that are active under it; other searched
    keys take `base_value(key)` (the preset + overrides value)."""
    point: dict[str, Any] = {}
    for key, d in search.items():
        if active(d, point):
            point[key] = PAPER_RECIPE[key] if key in PAPER_RECIPE else base_value(key)
    return point


def same_point(params: Mapping[str, Any], point: Mapping[str, Any]) -> bool:
    """True when sampled values equal a point (numbers compared to 1e-9 relative)."""
    def same(a: Any, b: Any) -> bool:
        if isinstance(b, bool) or isinstance(a, bool) or isinstance(b, str):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=1e-9)

    return params.keys() == point.keys() and all(same(params[k], point[k]) for k in point)


class SearchSpace:
    """Optuna define-by-run over a parsed `search:` mapping (picklable: the searcher's
    state, this included, is saved with the sweep)."""

    def __init__(self, search: Mapping[str, Mapping[str, Any]]) -> None:
        self.search = {k: dict(v) for k, v in search.items()}

    def __call__(self, trial: Any) -> None:
        chosen: dict[str, Any] = {}
        for key, d in self.search.items():
            if not active(d, chosen):
                continue
            kind = d["type"]
            if kind == "choice":
                chosen[key] = trial.suggest_categorical(key, d["values"])
            elif kind == "int":
                chosen[key] = trial.suggest_int(key, d["low"], d["high"])
            else:
                chosen[key] = trial.suggest_float(key, d["low"], d["high"],
                                                  log=kind == "loguniform")
        return None  # Ray's OptunaSearch collects the suggested values itself
