"""Mode-collapse metrics on fixed seeds, with the real-data floor beside them.

`build_evaluator(data, manifest, ...)` does the real-side work once (features, k-means
bins, reference histograms, classifier); `Evaluator(generator)` then samples `n_samples`
examples from seeds `eval_seed + i` and returns the `eval/*` keys the registry lists for
the data's model family (`audiogan.metrics.registry`).

The floor (`Evaluator.floor`) is the same metrics computed for held-out real data in place
of generated samples: the test split (else validation) capped at `n_samples` rows, against
the same training bins and training reference. It is what a perfect generator would score
with that many samples; e.g. `eval/ndb` of the floor is about the z-test's false-positive
rate. Note overlap and the pitch-class entropy gap compare with the validation windows, so
their floor uses the test split.

SpectoGAN's listening metrics (`eval/is`, `eval/is_real`, `eval/cond_acc`) score what a
listener would hear: generated and real spectrograms alike go through the audio round trip
(`audiogan.metrics.roundtrip`, `griffin_lim_iters` iterations with `griffin_lim_momentum`)
before the classifier sees them; the round trip of a sample set is computed once
(`registry.Scoring.heard`), that of the held-out split once when the evaluator is built.

Complex runs (`source_manifest`: the complex dataset the generator learnt) are scored by
the evaluator of a log-magnitude dataset of the same clips (`data`, `manifest`: its
statistics, NDB bins, training reference, classifier and floor): generated complex
spectrograms become audio by the exact inverse STFT and are analysed as that dataset's
log magnitudes (`roundtrip.heard_as`), which is both what every metric scores and what is
heard (no Griffin-Lim anywhere on the generated side). Their metrics compare with those
of log-magnitude runs on that dataset.

Conditional generators (`n_classes > 0`, called as `generator(z, labels)`) are asked for
`Evaluator.labels`: per seed, a class index drawn from the training split's label
frequencies (the run's label map: `latent.labels_for_seeds`, each sample's label from its
own seed, as its z; `Evaluator.label_names` names the classes). `eval/cond_acc` scores the
classifier's prediction against that requested label; its floor is the classifier's
accuracy on the held-out real clips against their true labels. Unconditional generators
have no `eval/cond_acc`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from audiogan import storage
from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.latent import labels_for_seeds, latents_for_seeds
from audiogan.metrics import features, inception, note_stats, registry, roundtrip
from audiogan.metrics.ndb import NDB

log = logging.getLogger(__name__)

MAX_KMEANS_ROWS = 5000    # k-means fit sample (cost cap); bin proportions use all rows
MAX_NN_TRAIN_ROWS = 10000  # training reference for eval/nn_train
GEN_BATCH = 250


def _subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(x) <= n:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    return x[idx]


def _first_nonempty(data: str, manifest: dict[str, Any], splits: tuple[str, ...],
                    scaled: bool = True) -> tuple[str, shards.Examples]:
    for split in splits:
        if manifest.get("counts", {}).get(split, 1):
            ex = shards.load_split(data, split, scaled=scaled, manifest=manifest)
            if len(ex.x):
                return split, ex
    return "", shards.Examples(np.zeros((0,), np.float32), [], [])


FAMILY_OF_KIND = {"notes": "pianogan", "spectrogram": "spectogan"}


def find_classifier(classifier: str, data: str) -> str | None:
    """`classifier` (metrics.classifier) if set, else `<data>/classifier/` when it holds one."""
    from audiogan.classifier import WEIGHTS

    path = classifier or storage.join(data, "classifier")
    if storage.exists(storage.join(path, WEIGHTS)):
        return path
    if classifier:
        raise UserError(f"metrics.classifier '{path}' holds no {WEIGHTS}")
    return None


def conditional(generator: torch.nn.Module) -> bool:
    """A conditional generator takes (z, labels): it says so with `n_classes > 0`."""
    return int(getattr(generator, "n_classes", 0) or 0) > 0


class Evaluator:
    """Scores generators on fixed seeds; real-side state is built once in `build_evaluator`."""

    def __init__(self, *, manifest: dict[str, Any], ndb: NDB, nn_ref: np.ndarray,
                 note_ref: dict[str, np.ndarray] | None, classifier: torch.nn.Module | None,
                 n_samples: int, eval_seed: int, latent_dim: int, device: str = "cpu",
                 classifier_labels: list[str] | None = None, griffin_lim_iters: int = 16,
                 griffin_lim_momentum: float = 0.0,
                 label_probs: Sequence[float] | None = None,
                 label_names: Sequence[str] | None = None,
                 pc_entropy_ref: float = math.nan,
                 source_manifest: dict[str, Any] | None = None) -> None:
        self.manifest, self.ndb, self.nn_ref = manifest, ndb, nn_ref
        self.note_ref, self.classifier, self.device = note_ref, classifier, device
        self.classifier_labels = list(classifier_labels or [])
        self.griffin_lim_iters, self.pc_entropy_ref = griffin_lim_iters, pc_entropy_ref
        self.griffin_lim_momentum = griffin_lim_momentum
        # A complex run's generated examples, converted into this dataset's log magnitudes.
        self.source_manifest = source_manifest
        self.kind = manifest["kind"]
        self.metrics = registry.for_family(
            FAMILY_OF_KIND[self.kind], ("classifier", "labels") if classifier is not None else ())
        self.seeds = [eval_seed + i for i in range(n_samples)]
        self.z = latents_for_seeds(self.seeds, latent_dim)
        self.labels = None if label_probs is None else labels_for_seeds(self.seeds, label_probs)
        self.label_names = None if label_names is None else list(label_names)
        self.is_real = math.nan
        self.floor: dict[str, float] = {}
        self.floor_split = ""
        # The floor's examples, labels and round trip: kept only when asked
        # (`build_evaluator(keep_floor=True)`: the final evaluation's intervals).
        self.floor_x: np.ndarray | None = None
        self.floor_labels: list[str] | None = None
        self.floor_heard: np.ndarray | None = None
        self.last_seconds = math.nan

    @torch.no_grad()
    def generate(self, generator: torch.nn.Module) -> np.ndarray:
        g = getattr(generator, "module", generator)  # unwrap DDP
        was_training = g.training
        g.eval()
        if conditional(g) and self.labels is None:
            raise ValueError("a conditional generator needs the evaluator built with its "
                             "label map (label_probs, label_names)")
        try:
            out = []
            for i in range(0, len(self.z), GEN_BATCH):
                z = self.z[i:i + GEN_BATCH].to(self.device)
                args = (z, self.labels[i:i + GEN_BATCH].to(self.device)) if conditional(g) \
                    else (z,)
                out.append(g(*args).float().cpu())
        finally:
            g.train(was_training)
        return torch.cat(out).numpy()

    def score(self, x_network: np.ndarray, labels: list[str] | None = None,
              heard: np.ndarray | None = None) -> dict[str, float]:
        """All eval/* metrics for a set of examples in network layout (generated or real).

        `labels`: the requested (generated) or true (real) label names, None when the
        examples have none (an unconditional generator): then no `eval/cond_acc`.
        `heard`: the examples' audio round trip when already computed."""
        scoring = registry.Scoring(x_network, self, labels=labels, heard=heard)
        out: dict[str, float] = {}
        for m in self.metrics:
            if "labels" in m.needs and labels is None:
                continue
            value = m.compute(scoring)
            out.update({k: float(v) for k, v in value.items()} if isinstance(value, dict)
                       else {m.name: float(value)})
        return out

    def __call__(self, generator: torch.nn.Module) -> dict[str, float]:
        start = time.perf_counter()
        x, heard = self.scored(self.generate(generator))
        requested = ([self.label_names[i] for i in self.labels.tolist()]
                     if conditional(getattr(generator, "module", generator)) else None)
        metrics = self.score(x, labels=requested, heard=heard)
        self.last_seconds = time.perf_counter() - start
        return metrics

    def scored(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Generated output -> (what the metrics score, its audio round trip when already
        known). Shared by every evaluation (trial-time and final), so they score the same."""
        if not np.isfinite(x).all():
            # A diverged generator: score what it makes (clipped) rather than crash the run.
            log.warning("generator output has %d non-finite values; scored as clipped to [-1, 1]",
                        int((~np.isfinite(x)).sum()))
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        if self.source_manifest is not None:  # complex: exact inverse, then log magnitudes
            x = roundtrip.heard_as(x, self.source_manifest, self.manifest,
                                   n_iter=self.griffin_lim_iters)
            return x, x
        return x, None

    def heard(self, x: np.ndarray) -> np.ndarray:
        """Log magnitudes in network layout as a listener hears them (the audio round trip
        with this evaluator's Griffin-Lim settings, the ones its real floor was heard with)."""
        return roundtrip.round_trip(x, self.manifest, n_iter=self.griffin_lim_iters,
                                    momentum=self.griffin_lim_momentum)


def build_evaluator(data: str, manifest: dict[str, Any], *, n_samples: int, ndb_k: int,
                    eval_seed: int, latent_dim: int, classifier: str = "", device: str = "cpu",
                    griffin_lim_iters: int = 16, griffin_lim_momentum: float = 0.0,
                    label_probs: Sequence[float] | None = None,
                    label_names: Sequence[str] | None = None,
                    source_manifest: dict[str, Any] | None = None,
                    keep_floor: bool = False) -> Evaluator:
    """The evaluator of `data` (see the module docstring); `classifier` is a directory or ""
    for `<data>/classifier/` when present; `label_probs` / `label_names` for a conditional
    generator (its label map's class frequencies and names); `source_manifest`: the
    complex dataset of a complex run (`data` is then its log-magnitude reference);
    `keep_floor`: keep the floor's examples on the evaluator (`floor_x`, `floor_labels`,
    `floor_heard`)."""
    start = time.perf_counter()
    if shards.is_complex(manifest):
        raise UserError(f"'{data}' holds complex spectrograms: they are scored through a "
                        "log-magnitude dataset of the same clips (metrics.reference_data)")
    kind = manifest["kind"]
    seed = eval_seed
    train = shards.load_split(data, "train", manifest=manifest).x
    if len(train) < ndb_k:
        raise UserError(f"'{data}' has {len(train)} training examples, fewer than "
                        f"metrics.ndb_k={ndb_k}: lower it with --set metrics.ndb_k=N")
    ndb = NDB.fit(features.ndb_features(train, manifest), ndb_k, seed=seed % 2**31,
                  max_fit=MAX_KMEANS_ROWS)
    nn_ref = features.nn_features(_subsample(train, MAX_NN_TRAIN_ROWS, seed), manifest)
    del train

    note_ref, pc_entropy_ref = None, math.nan
    if kind == "notes":
        ref_split, ref = _first_nonempty(data, manifest, ("validation", "test", "train"),
                                         scaled=False)
        note_ref = note_stats.histograms(ref.x)
        pc_entropy_ref = note_stats.pitch_class_entropy(ref.x)
        log.debug("note statistics reference: %s split", ref_split)

    model, classifier_labels = None, []
    if kind == "spectrogram":
        path = find_classifier(classifier, data)
        if path is None:
            log.warning("no digit classifier (metrics.classifier or %s): eval/is omitted; "
                        "train one with `audiogan classifier train --data %s`",
                        storage.join(data, "classifier"), data)
        else:
            from audiogan.classifier import load_classifier

            model, info = load_classifier(path, device=device)
            classifier_labels = info["labels"]
            if "accuracy_test_round_trip" not in info:
                log.warning("the digit classifier in %s was trained without the audio round "
                            "trip: retrain it (`audiogan classifier train --data %s`) for "
                            "eval/is and eval/cond_acc that judge what a listener hears",
                            path, data)

    ev = Evaluator(manifest=manifest, ndb=ndb, nn_ref=nn_ref, note_ref=note_ref,
                   classifier=model, n_samples=n_samples, eval_seed=eval_seed,
                   latent_dim=latent_dim, device=device, classifier_labels=classifier_labels,
                   griffin_lim_iters=griffin_lim_iters,
                   griffin_lim_momentum=griffin_lim_momentum, label_probs=label_probs,
                   label_names=label_names, pc_entropy_ref=pc_entropy_ref,
                   source_manifest=source_manifest)
    floor_split, held = _first_nonempty(data, manifest, ("test", "validation"))
    heard = None
    if model is not None and len(held.x):
        # The whole held-out split, round-tripped once (the floor scores a subsample of it).
        heard = roundtrip.round_trip(held.x, manifest, n_iter=griffin_lim_iters,
                                     momentum=griffin_lim_momentum)
        ev.is_real = inception.inception_score(model, heard, device)
    if len(held.x):
        ev.floor_split = floor_split
        idx = _subsample(np.arange(len(held.x)), n_samples, seed + 1)
        labels = [held.labels[i] for i in idx] if kind == "spectrogram" else None
        ev.floor = ev.score(held.x[idx], labels=labels,
                            heard=None if heard is None else heard[idx])
        if keep_floor:
            ev.floor_x, ev.floor_labels = held.x[idx], labels
            ev.floor_heard = None if heard is None else heard[idx]
    else:
        log.warning("no validation or test split in '%s': no real floor for the metrics", data)
    log.info("evaluator built in %.1f s (%s, K=%d, n=%d)", time.perf_counter() - start, kind,
             ndb_k, n_samples)
    return ev
