"""Latent vectors addressed by seed: sample `s` has the same z in any batch, on any machine;
or read from `.npy` files (`audiogan invert` writes one per recording, `audiogan sample
--latents` / `--interpolate-latents` read them).

A conditional model's sample is addressed by (seed, label): z from the seed, the label
given (`audiogan sample --labels`) or, for the evaluator's fixed seeds, drawn by
`labels_for_seeds` from the training split's class frequencies -- also per seed, so
evaluation seed s keeps its label for any `metrics.n_samples`.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from audiogan import storage
from audiogan.errors import UserError

# Mixed into each seed's label draw so the label is independent of that seed's z.
LABEL_STREAM = 0x6C6162656C


def latents_for_seeds(seeds: Sequence[int], latent_dim: int) -> torch.Tensor:
    """[len(seeds), latent_dim] float32, z ~ U[-1, 1] (WaveGAN), one CPU generator per seed."""
    out = torch.empty(len(seeds), latent_dim)
    for i, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(int(seed))
        out[i] = torch.rand(latent_dim, generator=g) * 2 - 1
    return out


def labels_for_seeds(seeds: Sequence[int], probs: Sequence[float]) -> torch.Tensor:
    """[len(seeds)] int64 class indices, seed s's drawn with probabilities `probs` from its
    own generator (numpy's SeedSequence of (LABEL_STREAM, s): stable across machines)."""
    cdf = np.cumsum(np.asarray(probs, np.float64))
    cdf /= cdf[-1]
    u = np.array([np.random.default_rng([LABEL_STREAM, int(s)]).random() for s in seeds])
    idx = np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
    return torch.from_numpy(idx.astype(np.int64))


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` points on the straight line from z_a to z_b, both ends included."""
    t = torch.linspace(0.0, 1.0, steps).unsqueeze(1)
    return (1 - t) * z_a.unsqueeze(0) + t * z_b.unsqueeze(0)


def _stem(path: str) -> str:
    name = os.path.basename(str(path).rstrip("/"))
    for suffix in (".npy", ".z"):
        name = name[:-len(suffix)] if name.endswith(suffix) else name
    return name or "z"


def load_latents(paths: Sequence[str], latent_dim: int) -> tuple[torch.Tensor, list[str]]:
    """z from `.npy` files, each [latent_dim] or [k, latent_dim] -> ([N, latent_dim] float32,
    a name per row: the file's stem, with the row index when a file holds several).
    A missing, unreadable or misshapen file is a one-line UserError."""
    import io

    rows, names = [], []
    for path in paths:
        try:
            z = np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read latents '{path}': {str(exc).splitlines()[0]}") from exc
        z = np.asarray(z, np.float32)
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != latent_dim or not len(z):
            raise UserError(f"latents '{path}' have shape {list(z.shape)}: this checkpoint "
                            f"takes [{latent_dim}] or [k, {latent_dim}]")
        if not np.isfinite(z).all():
            raise UserError(f"latents '{path}' hold non-finite values")
        stem = _stem(path)
        names += [stem] if len(z) == 1 else [f"{stem}_{i:02d}" for i in range(len(z))]
        rows.append(torch.from_numpy(z))
    return torch.cat(rows), names
