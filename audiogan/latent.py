"""Latent vectors addressed by seed: sample `s` has the same z in any batch, on any machine."""

from __future__ import annotations

from typing import Sequence

import torch


def latents_for_seeds(seeds: Sequence[int], latent_dim: int) -> torch.Tensor:
    """[len(seeds), latent_dim] float32, z ~ U[-1, 1] (WaveGAN), one CPU generator per seed."""
    out = torch.empty(len(seeds), latent_dim)
    for i, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(int(seed))
        out[i] = torch.rand(latent_dim, generator=g) * 2 - 1
    return out


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` points on the straight line from z_a to z_b, both ends included."""
    t = torch.linspace(0.0, 1.0, steps).unsqueeze(1)
    return (1 - t) * z_a.unsqueeze(0) + t * z_b.unsqueeze(0)
