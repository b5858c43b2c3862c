"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for both families.

With little data the critic memorises the training set and stops giving the generator a
useful signal. DiffAugment applies the same family of random, differentiable transforms
T to every example the critic sees -- real and fake, in the critic step and in the
generator step -- so the critic cannot tell them apart by the transform, and the
generator's gradient flows through T (the ops are gathers and masks, differentiable in
x). The generator still learns the un-augmented distribution because T is applied to
both sides. `train.augment` lists the ops (comma-separated, applied in this order):

  shift   each example shifted in time by k ~ U{-T/8 .. T/8} steps (DiffAugment's
          translation ratio 1/8), the edge repeated: +-32 notes, +-16 frames (128 ms).
  cutout  a zero block at a random place inside each example (DiffAugment's cutout):
          notes: a span of T/4 (64 notes, all three channels); spectrograms: half the
          frames x half the bins (a quarter of the area, as DiffAugment on images).
  mask    spectrograms only (SpecAugment-style): one time mask of width ~ U{0 .. T/8}
          frames and one frequency mask of ~ U{0 .. F/8} bins, set to 0, which after
          normalisation is the per-bin training mean.

Layouts: notes [N, 3, T]; spectrograms [N, 1, T frames, F bins]: time is axis 2 in both.
Every random draw comes from the `torch.Generator` passed in (the rank's own stream,
saved in checkpoints: a resumed run augments exactly as an uninterrupted one). With no
ops, `DiffAugment` returns its input and draws nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch

OPS = ("shift", "cutout", "mask")
SHIFT_RATIO = 1 / 8
CUTOUT_RATIO_NOTES = 1 / 4
CUTOUT_RATIO_SPEC = 1 / 2
MASK_RATIO = 1 / 8


class DiffAugment:
    def __init__(self, ops: Sequence[str], *, generator: torch.Generator) -> None:
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ValueError(f"unknown augmentation '{unknown[0]}' (known: {', '.join(OPS)})")
        self.ops = tuple(op for op in OPS if op in ops)
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = getattr(self, op)(x)
        return x

    # -- the ops ----------------------------------------------------------------------------
    def _randint(self, high: torch.Tensor | int, n: int, device: torch.device) -> torch.Tensor:
        """n integers, each uniform in [0, high_i] (inclusive), from the rank's generator."""
        u = torch.rand(n, generator=self.generator)
        return (u * (torch.as_tensor(high) + 1)).floor().long().to(device)

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[0], x.shape[2]
        reach = int(t * SHIFT_RATIO)
        k = self._randint(2 * reach, n, x.device) - reach
        idx = (torch.arange(t, device=x.device).unsqueeze(0) - k.unsqueeze(1)).clamp(0, t - 1)
        idx = idx.view(n, 1, t, *([1] * (x.dim() - 3))).expand_as(x)
        return x.gather(2, idx)

    def cutout(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[0], x.shape[2]
        if x.dim() == 3:
            length = int(t * CUTOUT_RATIO_NOTES)
            keep = ~_span(self._randint(t - length, n, x.device), length, t)
            return x * keep.view(n, 1, t).to(x.dtype)
        f = x.shape[3]
        lt, lf = int(t * CUTOUT_RATIO_SPEC), int(f * CUTOUT_RATIO_SPEC)
        in_t = _span(self._randint(t - lt, n, x.device), lt, t)
        in_f = _span(self._randint(f - lf, n, x.device), lf, f)
        keep = ~(in_t.unsqueeze(2) & in_f.unsqueeze(1))
        return x * keep.view(n, 1, t, f).to(x.dtype)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError("'mask' is time/frequency masking of spectrograms [N, 1, T, F]")
        n, t, f = x.shape[0], x.shape[2], x.shape[3]
        wt = self._randint(int(t * MASK_RATIO), n, x.device)
        wf = self._randint(int(f * MASK_RATIO), n, x.device)
        in_t = _span(self._randint(t - wt.cpu(), n, x.device), wt, t)
        in_f = _span(self._randint(f - wf.cpu(), n, x.device), wf, f)
        keep = ~(in_t.unsqueeze(2) | in_f.unsqueeze(1))
        return x * keep.view(n, 1, t, f).to(x.dtype)


def _span(start: torch.Tensor, length: torch.Tensor | int, size: int) -> torch.Tensor:
    """[N, size] bool: True on start_i <= i < start_i + length_i."""
    pos = torch.arange(size, device=start.device).unsqueeze(0)
    end = start + (length.to(start.device) if isinstance(length, torch.Tensor) else length)
    return (pos >= start.unsqueeze(1)) & (pos < end.unsqueeze(1))
