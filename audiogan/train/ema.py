"""A moving average of the generator's weights (StyleGAN's G_ema), for evaluation and sampling.

After generator step t (t = 1, 2, ...):

    ema <- beta_t * ema + (1 - beta_t) * generator
    beta_t = min(decay, 0.5 ** (1 / (rampup * t)))    when rampup > 0
    beta_t = decay                                     when rampup = 0

In half-lives: `decay` alone averages with a half-life of h = ln 0.5 / ln decay steps
(0.999: 693 steps); the warm-up caps the half-life at rampup * t, so after t steps the
average reaches back over at most a fraction `rampup` of the run. This is StyleGAN2-ADA's
rule (ema_nimg = min(ema_nimg, cur_nimg * ema_rampup); beta = 0.5 ** (batch / ema_nimg)),
counted in steps since every step sees one batch. Without it a short run (a sweep trial
of a few hundred steps with decay 0.999) would evaluate weights still near their random
initialisation; with it the average follows the generator closely early on and smooths
more as training goes on.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(step: int, decay: float, rampup: float) -> float:
    """beta_t of the module docstring (the weight kept from the average at step `step`)."""
    if rampup > 0:
        return min(decay, 0.5 ** (1.0 / (rampup * max(step, 1))))
    return decay


class EMA:
    """`module` is the averaged copy of the generator (eval mode, no gradients)."""

    def __init__(self, generator: nn.Module, *, decay: float, rampup: float) -> None:
        if not 0 < decay < 1:
            raise ValueError("EMA decay must be in (0, 1)")
        self.decay, self.rampup = decay, rampup
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Blend in the generator's weights after generator step `step` (1-based)."""
        beta = ema_beta(step, self.decay, self.rampup)
        for avg, p in zip(self.module.parameters(), generator.parameters()):
            avg.lerp_(p.detach(), 1.0 - beta)   # avg + (1 - beta) (p - avg)
        for avg, b in zip(self.module.buffers(), generator.buffers()):
            avg.copy_(b)
