"""Mode-collapse metrics on fixed seeds, with the real-data floor beside them.

`build_evaluator(cfg, data, manifest)` does the real-side work once (features, k-means
bins, reference histograms, classifier); `Evaluator(generator)` then samples
`metrics.n_samples` examples from seeds `metrics.eval_seed + i` and returns `eval/*` keys.

The floor (`Evaluator.floor`) is the same metrics computed for held-out real data in place
of generated samples: the test split (else validation) capped at `n_samples` rows, against
the same training bins and training reference. It is what a perfect generator would score
with that many samples; e.g. `eval/ndb` of the floor is about the z-test's false-positive
rate. Note overlap compares with the validation windows, so its floor uses the test split.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch

from audiogan import storage
from audiogan.config import Config
from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.latent import latents_for_seeds
from audiogan.metrics import features, inception, nn, note_stats
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
                    scaled: bool = True) -> tuple[str, np.ndarray]:
    for split in splits:
        if manifest.get("counts", {}).get(split, 1):
            ex = shards.load_split(data, split, scaled=scaled, manifest=manifest)
            if len(ex.x):
                return split, ex.x
    return "", np.zeros((0,), np.float32)


def find_classifier(cfg: Config, data: str) -> str | None:
    """`metrics.classifier` if set, else `<data>/classifier/` when it holds a classifier."""
    from audiogan.classifier import WEIGHTS

    path = cfg.metrics.classifier or storage.join(data, "classifier")
    if storage.exists(storage.join(path, WEIGHTS)):
        return path
    if cfg.metrics.classifier:
        raise UserError(f"metrics.classifier '{path}' holds no {WEIGHTS}")
    return None


class Evaluator:
    """Scores generators on fixed seeds; real-side state is built once in `build_evaluator`."""

    def __init__(self, cfg: Config, manifest: dict[str, Any], ndb: NDB, nn_ref: np.ndarray,
                 note_ref: dict[str, np.ndarray] | None, classifier: torch.nn.Module | None,
                 device: str = "cpu") -> None:
        self.cfg, self.manifest, self.ndb, self.nn_ref = cfg, manifest, ndb, nn_ref
        self.note_ref, self.classifier, self.device = note_ref, classifier, device
        self.kind = manifest["kind"]
        n = cfg.metrics.n_samples
        self.seeds = [cfg.metrics.eval_seed + i for i in range(n)]
        self.z = latents_for_seeds(self.seeds, cfg.model.latent_dim)
        self.is_real = math.nan
        self.floor: dict[str, float] = {}
        self.floor_split = ""
        self.last_seconds = math.nan

    @torch.no_grad()
    def generate(self, generator: torch.nn.Module) -> np.ndarray:
        g = getattr(generator, "module", generator)  # unwrap DDP
        was_training = g.training
        g.eval()
        try:
            out = [g(self.z[i:i + GEN_BATCH].to(self.device)).float().cpu()
                   for i in range(0, len(self.z), GEN_BATCH)]
        finally:
            g.train(was_training)
        return torch.cat(out).numpy()

    def score(self, x_network: np.ndarray) -> dict[str, float]:
        """All eval/* metrics for a set of examples in network layout (generated or real)."""
        ndb = self.ndb(features.ndb_features(x_network, self.manifest))
        nn_feats = features.nn_features(x_network, self.manifest)
        out = {"eval/ndb": ndb["ndb"], "eval/ndb_js": ndb["ndb_js"],
               "eval/nn_self": nn.nn_self(nn_feats), "eval/nn_train": nn.nn_to(nn_feats, self.nn_ref)}
        if self.kind == "notes" and self.note_ref is not None:
            raw = shards.from_network(x_network, self.manifest)
            out["eval/note_overlap"] = note_stats.overlaps(raw, self.note_ref)["mean"]
        if self.kind == "spectrogram" and self.classifier is not None:
            out["eval/is"] = inception.inception_score(self.classifier, x_network, self.device)
            out["eval/is_real"] = self.is_real
        return out

    def __call__(self, generator: torch.nn.Module) -> dict[str, float]:
        start = time.perf_counter()
        x = self.generate(generator)
        if not np.isfinite(x).all():
            # A diverged generator: score what it makes (clipped) rather than crash the run.
            log.warning("generator output has %d non-finite values; scored as clipped to [-1, 1]",
                        int((~np.isfinite(x)).sum()))
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        metrics = self.score(x)
        self.last_seconds = time.perf_counter() - start
        return metrics


def build_evaluator(cfg: Config, data: str, manifest: dict[str, Any], device: str = "cpu"
                    ) -> Evaluator:
    start = time.perf_counter()
    kind = manifest["kind"]
    seed = cfg.metrics.eval_seed
    train = shards.load_split(data, "train", manifest=manifest).x
    if len(train) < cfg.metrics.ndb_k:
        raise UserError(f"'{data}' has {len(train)} training examples, fewer than "
                        f"metrics.ndb_k={cfg.metrics.ndb_k}: lower it with --set metrics.ndb_k=N")
    ndb = NDB.fit(features.ndb_features(train, manifest), cfg.metrics.ndb_k, seed=seed % 2**31,
                  max_fit=MAX_KMEANS_ROWS)
    nn_ref = features.nn_features(_subsample(train, MAX_NN_TRAIN_ROWS, seed), manifest)
    del train

    note_ref = None
    if kind == "notes":
        ref_split, ref_raw = _first_nonempty(data, manifest, ("validation", "test", "train"),
                                             scaled=False)
        note_ref = note_stats.histograms(ref_raw)
        log.debug("note statistics reference: %s split", ref_split)

    classifier = None
    if kind == "spectrogram":
        path = find_classifier(cfg, data)
        if path is None:
            log.warning("no digit classifier (metrics.classifier or %s): eval/is omitted; "
                        "train one with `audiogan classifier train --data %s`",
                        storage.join(data, "classifier"), data)
        else:
            from audiogan.classifier import load_classifier

            classifier, _ = load_classifier(path, device=device)

    ev = Evaluator(cfg, manifest, ndb, nn_ref, note_ref, classifier, device)
    floor_split, held = _first_nonempty(data, manifest, ("test", "validation"))
    if classifier is not None:
        _, test_x = _first_nonempty(data, manifest, ("test", "validation"))
        ev.is_real = inception.inception_score(classifier, test_x, device)
    if len(held):
        ev.floor_split = floor_split
        ev.floor = ev.score(_subsample(held, cfg.metrics.n_samples, seed + 1))
    else:
        log.warning("no validation or test split in '%s': no real floor for the metrics", data)
    log.info("evaluator built in %.1f s (%s, K=%d, n=%d)", time.perf_counter() - start, kind,
             cfg.metrics.ndb_k, cfg.metrics.n_samples)
    return ev
