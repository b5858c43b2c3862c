"""Objectives, Pareto fronts and the declared selection rule (no Ray, no Optuna).

A sweep optimises one or more objectives (`objectives:` in the sweep YAML, each an `eval/*`
metric with its direction; the older `metric:`/`mode:` pair is one objective). A *vector*
is the objective values of ONE evaluation (one checkpoint): vectors are never assembled
from different checkpoints. An evaluation missing an objective, or with a non-finite one,
has no vector and is never on a front.

The selection rule (`select:` in the YAML) turns a set of vectors into one choice. It is
used everywhere a single answer is needed: the trial's value told to Optuna, a trial's
best checkpoint, the trial `audiogan best` picks, the final evaluation's winner.

    select: {rule: first}                                   # the default
    select: {rule: lexicographic, tolerance: {eval/ndb: 0.05}}
    select: {rule: weighted, weights: {eval/ndb: 1.0, eval/note_overlap: 2.0}}

- `first`: the first objective decides; ties go to the next objectives, in order.
- `lexicographic`: objectives in order; values within `tolerance` of the best value of an
  objective count as equal to it (e.g. 0.05 = one NDB bin in 20: noise), and the next
  objective decides among them.
- `weighted`: the smallest sum of weight x value, a value counted positive when the
  objective is minimised and negative when maximised (weights >= 0 say how much one unit
  of each objective is worth; they must be given for every objective).

Every rule chooses among the Pareto-optimal vectors, so the choice is never dominated;
remaining ties go to the earliest vector (the earliest evaluation, the first trial).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from audiogan.errors import UserError
from audiogan.metrics.registry import check_objective

RULES = ("first", "lexicographic", "weighted")
Vector = Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Objective:
    metric: str
    mode: str  # "min" | "max"

    def sign(self) -> float:
        """+1 for min, -1 for max: sign x value is smaller when better."""
        return 1.0 if self.mode == "min" else -1.0


@dataclasses.dataclass(frozen=True)
class Selection:
    rule: str = "first"
    tolerance: Mapping[str, float] = dataclasses.field(default_factory=dict)
    weights: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.tolerance:
            out["tolerance"] = dict(self.tolerance)
        if self.weights:
            out["weights"] = dict(self.weights)
        return out


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def vector_of(values: Mapping[str, Any], objectives: Sequence[Objective]) -> dict[str, float] | None:
    """The objective vector of one report, or None when an objective is missing/non-finite."""
    if not all(_finite(values.get(o.metric)) for o in objectives):
        return None
    return {o.metric: float(values[o.metric]) for o in objectives}


def _key(v: Vector, objectives: Sequence[Objective]) -> tuple[float, ...]:
    return tuple(o.sign() * v[o.metric] for o in objectives)


def dominates(a: Vector, b: Vector, objectives: Sequence[Objective]) -> bool:
    """a is at least as good as b in every objective and better in one."""
    ka, kb = _key(a, objectives), _key(b, objectives)
    return all(x <= y for x, y in zip(ka, kb)) and any(x < y for x, y in zip(ka, kb))


def pareto_front(vectors: Sequence[Vector | None], objectives: Sequence[Objective]) -> list[int]:
    """Indices of the non-dominated vectors (None entries never), in input order. Equal
    vectors do not dominate each other: all of them stay."""
    idx = [i for i, v in enumerate(vectors) if v is not None]
    return [i for i in idx if not any(dominates(vectors[j], vectors[i], objectives)
                                      for j in idx if j != i)]


def select(vectors: Sequence[Vector | None], objectives: Sequence[Objective],
           selection: Selection = Selection()) -> int | None:
    """Index of the vector the rule chooses (None when no vector is complete)."""
    front = pareto_front(vectors, objectives)
    if not front:
        return None
    key = {i: _key(vectors[i], objectives) for i in front}
    if selection.rule == "weighted":
        score = {i: sum(selection.weights[o.metric] * o.sign() * vectors[i][o.metric]
                        for o in objectives) for i in front}
        return min(front, key=lambda i: (score[i], key[i], i))
    candidates = front
    if selection.rule == "lexicographic":
        for n, o in enumerate(objectives):
            best = min(key[i][n] for i in candidates)
            tol = float(selection.tolerance.get(o.metric, 0.0))
            candidates = [i for i in candidates if key[i][n] <= best + tol + 1e-12]
    return min(candidates, key=lambda i: (key[i], i))


def rank(vectors: Sequence[Vector | None], objectives: Sequence[Objective],
         selection: Selection = Selection()) -> list[int]:
    """All indices, best first: the rule's choice, then its choice among the rest, ...;
    entries without a vector last (input order)."""
    left = [i for i, v in enumerate(vectors) if v is not None]
    order: list[int] = []
    while left:
        pick = select([vectors[i] for i in left], objectives, selection)
        order.append(left.pop(pick))
    return order + [i for i, v in enumerate(vectors) if v is None]


# -- parsing (sweep YAML) ---------------------------------------------------------------------
def parse_objectives(raw: Any, metric: str | None, mode: str | None, family: str,
                     where: str) -> list[dict[str, str]]:
    """`objectives:` (a list of {metric, mode}) or the single `metric`/`mode`, checked
    against the metric registry; as plain dicts (they cross to trials in the spec)."""
    if raw is None:
        name = metric or "eval/ndb"
        return [{"metric": name, "mode": check_objective(name, mode or "", family,
                                                         where=f"{where}: metric")}]
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{where}: objectives must be a non-empty list of {{metric, mode}}")
    out: list[dict[str, str]] = []
    for i, item in enumerate(raw):
        item = {"metric": item} if isinstance(item, str) else item
        if not isinstance(item, Mapping) or set(item) - {"metric", "mode"} or "metric" not in item:
            raise UserError(f"{where}: objectives[{i}] must be {{metric: eval/..., mode: min|max}}")
        name = str(item["metric"])
        out.append({"metric": name, "mode": check_objective(
            name, str(item.get("mode") or ""), family, where=f"{where}: objectives[{i}]")})
    names = [o["metric"] for o in out]
    if len(set(names)) != len(names):
        raise UserError(f"{where}: an objective is listed twice ({', '.join(names)})")
    if metric is not None and metric != names[0] or mode and mode != out[0]["mode"]:
        raise UserError(f"{where}: give either objectives: or metric:/mode:, not both")
    return out


def parse_selection(raw: Any, objectives: Sequence[Objective], where: str) -> dict[str, Any]:
    """`select:` checked against the objectives; a plain dict (see `selection_of`)."""
    raw = {"rule": "first"} if raw is None else raw
    if isinstance(raw, str):
        raw = {"rule": raw}
    if not isinstance(raw, Mapping) or raw.get("rule") not in RULES:
        raise UserError(f"{where}: select must be {{rule: {'|'.join(RULES)}, ...}}")
    rule = raw["rule"]
    allowed = {"first": {"rule"}, "lexicographic": {"rule", "tolerance"},
               "weighted": {"rule", "weights"}}[rule]
    extra = sorted(set(raw) - allowed)
    if extra:
        raise UserError(f"{where}: select.{extra[0]} does not apply to rule {rule}")
    names = [o.metric for o in objectives]
    out: dict[str, Any] = {"rule": rule}
    for field in ("tolerance", "weights"):
        if field not in raw:
            continue
        table = raw[field]
        if not isinstance(table, Mapping):
            raise UserError(f"{where}: select.{field} must map objectives to numbers")
        for name, value in table.items():
            if name not in names:
                raise UserError(f"{where}: select.{field} names '{name}', not an objective "
                                f"({', '.join(names)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UserError(f"{where}: select.{field}.{name} must be a number >= 0")
        out[field] = {str(k): float(v) for k, v in table.items()}
    if rule == "weighted" and set(out.get("weights", {})) != set(names):
        raise UserError(f"{where}: select.weights needs a weight for every objective "
                        f"({', '.join(names)})")
    return out


def objectives_of(raw: Sequence[Mapping[str, str]]) -> tuple[Objective, ...]:
    return tuple(Objective(o["metric"], o["mode"]) for o in raw)


def selection_of(raw: Mapping[str, Any] | None) -> Selection:
    raw = raw or {"rule": "first"}
    return Selection(rule=raw["rule"], tolerance=dict(raw.get("tolerance") or {}),
                     weights=dict(raw.get("weights") or {}))
