"""The metric registry (after StyleGAN's `metric_main`): one row per metric with its name,
direction, model families and compute function. Every reader uses it: the evaluator (what
to compute), `audiogan evaluate` (which way is better), `audiogan best` and the curves,
the sweep spec's checks and config validation (`check_objective`).

A compute function takes a `Scoring`: the sample set in network layout plus the real-side
references, with the shared intermediate results (NDB bins, features) computed once.
K (`metrics.ndb_k`) and N (`metrics.n_samples`) live in the config, not in the key.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from audiogan.errors import UserError

FAMILIES = ("pianogan", "spectogan")
MODES = ("min", "max")


class Scoring:
    """One sample set being scored, with lazily computed shared pieces."""

    def __init__(self, x_network: Any, refs: Any) -> None:
        self.x, self.refs = x_network, refs

    @functools.cached_property
    def ndb(self) -> dict[str, float]:
        from audiogan.metrics import features

        return self.refs.ndb(features.ndb_features(self.x, self.refs.manifest))

    @functools.cached_property
    def nn_features(self) -> Any:
        from audiogan.metrics import features

        return features.nn_features(self.x, self.refs.manifest)


def _ndb(s: Scoring) -> float:
    return s.ndb["ndb"]


def _ndb_js(s: Scoring) -> float:
    return s.ndb["ndb_js"]


def _nn_self(s: Scoring) -> float:
    from audiogan.metrics import nn

    return nn.nn_self(s.nn_features)


def _nn_train(s: Scoring) -> float:
    from audiogan.metrics import nn

    return nn.nn_to(s.nn_features, s.refs.nn_ref)


def _note_overlap(s: Scoring) -> float:
    from audiogan.data import shards
    from audiogan.metrics import note_stats

    raw = shards.from_network(s.x, s.refs.manifest)
    return note_stats.overlaps(raw, s.refs.note_ref)["mean"]


def _inception(s: Scoring) -> float:
    from audiogan.metrics import inception

    return inception.inception_score(s.refs.classifier, s.x, s.refs.device)


def _is_real(s: Scoring) -> float:
    return s.refs.is_real


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    direction: str                      # "min" or "max": which way is better
    families: tuple[str, ...]           # model families it applies to
    compute: Callable[[Scoring], float]
    description: str
    needs: str = ""                     # a real-side reference it cannot do without
    objective: bool = True              # may a sweep or checkpoint ranking use it?

    @property
    def better(self) -> str:
        return "lower" if self.direction == "min" else "higher"


_BOTH = FAMILIES
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("eval/ndb", "min", _BOTH, _ndb,
           "fraction of k-means bins whose share differs from training (z-test, p=0.05)"),
    Metric("eval/ndb_js", "min", _BOTH, _ndb_js,
           "Jensen-Shannon divergence of the NDB bin histograms"),
    Metric("eval/nn_self", "max", _BOTH, _nn_self,
           "mean distance to the nearest other generated sample (diversity)"),
    Metric("eval/nn_train", "max", _BOTH, _nn_train,
           "mean distance to the nearest training example (no copying)"),
    Metric("eval/note_overlap", "max", ("pianogan",), _note_overlap,
           "mean overlap of pitch-class, pitch, step and duration histograms"),
    Metric("eval/is", "max", ("spectogan",), _inception,
           "inception score from the project's digit classifier", needs="classifier"),
    Metric("eval/is_real", "max", ("spectogan",), _is_real,
           "inception score of the real test split (a reference)", needs="classifier",
           objective=False),
)}


def get(name: str) -> Metric:
    if name not in METRICS:
        raise UserError(f"unknown metric '{name}' (known: {', '.join(METRICS)})")
    return METRICS[name]


def for_family(family: str, available: tuple[str, ...] = ("classifier",)) -> list[Metric]:
    """The metrics a family's evaluator computes, given the references it has."""
    return [m for m in METRICS.values()
            if family in m.families and (not m.needs or m.needs in available)]


def direction(name: str) -> str:
    return get(name).direction


def check_objective(name: str, mode: str = "", family: str = "", where: str = "objective"
                    ) -> str:
    """The objective's mode; a one-line UserError for an unknown metric, one that cannot be
    an objective, one of another model family, or a mode against its direction."""
    if name not in METRICS:
        objectives = [m.name for m in METRICS.values() if m.objective
                      and (not family or family in m.families)]
        raise UserError(f"{where}: unknown metric '{name}' (choose from {', '.join(objectives)})")
    metric = METRICS[name]
    if not metric.objective:
        raise UserError(f"{where}: '{name}' is a reference value, not an objective")
    if family and family not in metric.families:
        raise UserError(f"{where}: '{name}' is a {'/'.join(metric.families)} metric, "
                        f"not one of {family}")
    if mode and mode not in MODES:
        raise UserError(f"{where}: mode must be min or max, got '{mode}'")
    if mode and mode != metric.direction:
        raise UserError(f"{where}: '{name}' is better when {metric.better} "
                        f"(mode {metric.direction}), not mode {mode}")
    return metric.direction
