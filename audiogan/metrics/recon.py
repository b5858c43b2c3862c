"""`eval/recon`: how well the generator can reproduce real test clips it never saw.

The mean inversion distance (`audiogan.inversion`: L1 of normalised log magnitudes for
SpectoGAN, MSE of scaled notes for PianoGAN) over `n` real examples of the test split
(else validation), a seeded subsample, each inverted from `restarts` starting points for
`steps` Adam steps; a conditional generator is asked for each clip's true class.
Two references beside it, in the same distance:
  random_z       the mean distance from the restarts' starting latents (an untrained
                 search: what the generator gives for arbitrary z)
  nearest_train  the mean distance from each clip to its nearest training example (what
                 a generator that memorised the training set would reach without
                 generalising; a model below it reproduces unseen clips better than
                 copying would)
Inversion is minutes of optimisation, so this is computed only by `audiogan evaluate
--recon N` (final evaluations), never at every checkpoint (the registry's `needs`
keeps it out of the per-checkpoint evaluator).

A complex checkpoint reads either its complex dataset or a log-magnitude dataset of the
same clips: both give the same targets (the complex manifest records the log-magnitude
statistics of its clips), so its eval/recon compares with log-magnitude runs'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiogan import inversion
from audiogan.data import complex_spec, shards
from audiogan.errors import UserError

MAX_TRAIN = 5000  # nearest-training reference: a seeded subsample of this many


def _raw_targets(data: str, manifest: dict[str, Any], split: str, meta: dict[str, Any]
                 ) -> tuple[torch.Tensor, list[str]]:
    ex = shards.load_split(data, split, scaled=False, manifest=manifest)
    if meta["kind"] == "notes":
        return inversion.note_targets(ex.x, meta), ex.labels
    raw = complex_spec.log_magnitude(ex.x.astype(np.float64)) if shards.is_complex(manifest) \
        else ex.x
    return inversion.spectrogram_targets(raw, meta), ex.labels


def _pick(n_total: int, n: int, seed: int) -> np.ndarray:
    if n_total <= n:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def measure(generator: torch.nn.Module, meta: dict[str, Any], data: str,
            manifest: dict[str, Any], n: int, *, label_map: Any = None,
            steps: int = inversion.STEPS, restarts: int = inversion.RESTARTS, seed: int = 0
            ) -> dict[str, Any]:
    """eval/recon and its references for `generator` (checkpoint `meta`) on `data`."""
    if n < 1:
        raise UserError("--recon N needs N >= 1")
    if manifest["kind"] != meta["kind"]:
        raise UserError(f"eval/recon: '{data}' holds {manifest['kind']} data, the checkpoint "
                        f"generates {meta['kind']}")
    split = "test" if manifest.get("counts", {}).get("test", 1) else "validation"
    targets, labels = _raw_targets(data, manifest, split, meta)
    if not len(targets):
        raise UserError(f"eval/recon: '{data}' has no test or validation examples")
    idx = _pick(len(targets), n, seed)
    targets, labels = targets[idx], [labels[i] for i in idx]
    y = None if label_map is None else torch.from_numpy(label_map.indices(labels))
    space = inversion.Space(meta)
    result = inversion.invert(generator, targets, space, labels=y, steps=steps,
                              restarts=restarts, seed=seed)
    train, _ = _raw_targets(data, manifest, "train", meta)
    train = train[_pick(len(train), MAX_TRAIN, seed + 1)]
    nearest = inversion.nearest_distance(targets, train, space)
    return {"eval/recon": float(result.distance.mean()),
            "random_z": float(result.random_z.mean()),
            "nearest_train": float(nearest.mean()),
            "n": int(len(targets)), "split": split, "steps": steps, "restarts": restarts,
            "seed": seed, "distance": space.name,
            "per_clip": [round(float(d), 5) for d in result.distance]}
