"""The metric registry (after StyleGAN's `metric_main`): one row per metric with its name,
direction, model families and compute function. Every reader uses it: the evaluator (what
to compute), `audiogan evaluate` (which way is better), `audiogan best` and the curves,
the sweep spec's checks and config validation (`check_objective`).

A compute function takes a `Scoring`: the sample set in network layout plus the real-side
references, with the shared intermediate results (NDB bins, features, the audio round trip
and the classifier's probabilities) computed once. It returns the metric's value, or a dict
of keys when the metric also has a per-label breakdown (`eval/cond_acc` -> `eval/cond_acc/3`,
...; `metric_of` maps such a key to its metric, which alone can be an objective).
K (`metrics.ndb_k`) and N (`metrics.n_samples`) live in the config, not in the key.

Listening metrics (`eval/is`, `eval/is_real`, `eval/cond_acc`) compare spectrograms after
the audio round trip (`audiogan.metrics.roundtrip`: Griffin-Lim to audio, analysed again),
generated and real alike: a spectrogram no one can hear scores nothing.

`eval/recon` (GAN inversion of real test clips, `audiogan.metrics.recon`) takes minutes of
optimisation per model: it needs "inversion", which only a final evaluation (`audiogan
evaluate --recon N`) provides, so the per-checkpoint evaluator never computes it and no
sweep or checkpoint ranking can use it.

Directions: "min" / "max" say which way is better; "match" marks a reference value that
should be close to the real data's (its floor), never an objective: `eval/pc_entropy` is
shown beside the real test split's value, and its distance from the real validation value,
`eval/pc_entropy_gap` (direction min), is the one a sweep may optimise.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from audiogan.errors import UserError

FAMILIES = ("pianogan", "spectogan")
MODES = ("min", "max")                # objective modes
DIRECTIONS = (*MODES, "match")        # "match": a reference, closer to the real floor is better


class Scoring:
    """One sample set being scored, with lazily computed shared pieces.

    `labels`: each example's requested label (a conditional generator's) or true label
    (real data), as label names; None for an unconditional generator. `heard`: the sample
    set already round-tripped, when the caller has it (the evaluator's real references).
    """

    def __init__(self, x_network: Any, refs: Any, labels: list[str] | None = None,
                 heard: Any = None) -> None:
        self.x, self.refs, self.labels = x_network, refs, labels
        if heard is not None:
            self.heard = heard  # fills the cached property

    @functools.cached_property
    def ndb(self) -> dict[str, float]:
        from audiogan.metrics import features

        return self.refs.ndb(features.ndb_features(self.x, self.refs.manifest))

    @functools.cached_property
    def nn_features(self) -> Any:
        from audiogan.metrics import features

        return features.nn_features(self.x, self.refs.manifest)

    @functools.cached_property
    def heard(self) -> Any:
        """The sample set after the audio round trip, in network layout (computed once)."""
        from audiogan.metrics import roundtrip

        return roundtrip.round_trip(self.x, self.refs.manifest,
                                    n_iter=self.refs.griffin_lim_iters,
                                    momentum=self.refs.griffin_lim_momentum)

    @functools.cached_property
    def probs(self) -> Any:
        """The digit classifier's class probabilities of what is heard."""
        from audiogan.metrics import inception

        return inception.class_probabilities(self.refs.classifier, self.heard,
                                             device=self.refs.device)


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


def _pc_entropy(s: Scoring) -> float:
    from audiogan.data import shards
    from audiogan.metrics import note_stats

    return note_stats.pitch_class_entropy(shards.from_network(s.x, s.refs.manifest))


def _pc_entropy_gap(s: Scoring) -> float:
    return abs(_pc_entropy(s) - s.refs.pc_entropy_ref)


def _inception(s: Scoring) -> float:
    from audiogan.metrics import inception

    return inception.inception_score_from_probs(s.probs)


def _is_real(s: Scoring) -> float:
    return s.refs.is_real


def _cond_acc(s: Scoring) -> dict[str, float]:
    """Accuracy of the classifier against the requested labels, overall and per label."""
    import numpy as np

    names = list(s.refs.classifier_labels)
    predicted = np.asarray(names, dtype=object)[s.probs.argmax(1).numpy()]
    requested = np.asarray(s.labels, dtype=object)
    hit = predicted == requested
    out = {"eval/cond_acc": float(hit.mean()) if len(hit) else float("nan")}
    for label in sorted(set(s.labels), key=lambda v: (len(v), v)):
        out[f"eval/cond_acc/{label}"] = float(hit[requested == label].mean())
    return out


def _recon(s: Scoring) -> float:
    raise RuntimeError("eval/recon inverts real clips (audiogan.metrics.recon, `audiogan "
                       "evaluate --recon N`); a sample set cannot give it")


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    direction: str                      # "min" or "max": which way is better
    families: tuple[str, ...]           # model families it applies to
    compute: Callable[[Scoring], float | dict[str, float]]  # a dict: with per-label keys
    description: str
    needs: tuple[str, ...] = ()         # what it cannot do without: "classifier", "labels",
                                        # "inversion" (final evaluations only)
    objective: bool = True              # may a sweep or checkpoint ranking use it?

    @property
    def better(self) -> str:
        return {"min": "lower", "max": "higher", "match": "closer to real"}[self.direction]


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
    Metric("eval/pc_entropy", "match", ("pianogan",), _pc_entropy,
           "mean per-window pitch-class entropy in bits (max log2 12 = 3.58); a reference "
           "to read beside the real test split's value", objective=False),
    Metric("eval/pc_entropy_gap", "min", ("pianogan",), _pc_entropy_gap,
           "|eval/pc_entropy - the real validation windows' value| in bits"),
    Metric("eval/is", "max", ("spectogan",), _inception,
           "inception score from the robust digit classifier, after the audio round trip",
           needs=("classifier",)),
    Metric("eval/is_real", "max", ("spectogan",), _is_real,
           "inception score of the real test split after the round trip (a reference)",
           needs=("classifier",), objective=False),
    Metric("eval/cond_acc", "max", ("spectogan",), _cond_acc,
           "robust digit classifier's accuracy against the requested label after the audio "
           "round trip (conditional generators; also per label as eval/cond_acc/<label>)",
           needs=("classifier", "labels")),
    Metric("eval/recon", "min", _BOTH, _recon,
           "mean GAN-inversion distance of real test clips (L1 of normalised log magnitudes; "
           "PianoGAN: MSE of scaled notes), beside random z and the nearest training example",
           needs=("inversion",), objective=False),
)}


def get(name: str) -> Metric:
    if name not in METRICS:
        raise UserError(f"unknown metric '{name}' (known: {', '.join(METRICS)})")
    return METRICS[name]


def _parent(key: str) -> str | None:
    """'eval/cond_acc/3' -> 'eval/cond_acc' (a per-label key of a metric), else None."""
    parent = key.rpartition("/")[0]
    return parent if parent in METRICS and METRICS[parent].compute is _cond_acc else None


def metric_of(key: str) -> Metric:
    """The metric a reported key belongs to: itself, or the metric of a per-label key."""
    return METRICS[_parent(key)] if _parent(key) and key not in METRICS else get(key)


def for_family(family: str, available: tuple[str, ...] = ("classifier", "labels")
               ) -> list[Metric]:
    """The metrics a family's evaluator computes, given the references it has."""
    return [m for m in METRICS.values()
            if family in m.families and set(m.needs) <= set(available)]


def direction(name: str) -> str:
    return get(name).direction


def check_objective(name: str, mode: str = "", family: str = "", where: str = "objective"
                    ) -> str:
    """The objective's mode; a one-line UserError for an unknown metric, one that cannot be
    an objective, one of another model family, or a mode against its direction."""
    if _parent(name) and name not in METRICS:
        raise UserError(f"{where}: '{name}' is one label's share of '{_parent(name)}', "
                        f"not an objective: use '{_parent(name)}'")
    if name not in METRICS:
        objectives = [m.name for m in METRICS.values() if m.objective
                      and (not family or family in m.families)]
        raise UserError(f"{where}: unknown metric '{name}' (choose from {', '.join(objectives)})")
    metric = METRICS[name]
    if "inversion" in metric.needs:
        raise UserError(f"{where}: '{name}' is computed only by final evaluations "
                        "(audiogan evaluate --recon N), not at checkpoints: not an objective")
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
