"""GAN inversion: the latent z whose generated example is closest to a real one.

Distances (`Space`), per example, 0 = identical:
- SpectoGAN: L1 (mean absolute difference over the 128 x 128 bins) between normalised log
  magnitudes, (log(|X| + 1e-6) - mean) / std / 3 clipped to [-1, 1] with the per-bin
  statistics of the checkpoint's log-magnitude data. A log-magnitude generator's output is
  already in that space; a complex generator's output is taken there differentiably (its
  compressed magnitudes expanded, logged and normalised with the log-magnitude statistics
  of the same clips, which a complex manifest records), so distances compare across the
  two representations. Log magnitudes, not waveforms or complex values: a real
  recording's phase is not something a log-magnitude generator can match, log units weigh
  quiet and loud parts as hearing does (dB), and L1 lets a few unmatched bins (noise,
  a cough) cost what they are rather than dominate.
- PianoGAN: mean squared error between scaled notes [3, 256] (pitch, step, duration in
  [-1, 1], the networks' space); `pitch_match` adds the share of notes whose rounded
  pitch equals the real one at the same position.

Optimiser: `restarts` starting points, restart r at z = `latents_for_seeds([seed + r])`
(the same for every example, so an example's inversion does not depend on what it is
batched with); Adam, lr LR cosine-decayed to 0 over `steps`; z clamped to [-1, 1] (the
prior's support) after each update; the best z seen per restart, the best restart per
example. All examples x restarts run together in batches of `batch` rows: each row's loss
is its own (the batch loss is their sum), and the generator has no batch statistics.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable

import numpy as np
import torch

from audiogan.data import scaling, shards, spectro
from audiogan.latent import latents_for_seeds
from audiogan.models import PIANO_CHANNELS
from audiogan.pitch import OneHotPitch

log = logging.getLogger(__name__)

STEPS, RESTARTS, LR, BATCH = 300, 4, 0.05, 128
PROGRESS_S = 5.0


def log_magnitude_normalisation(meta: dict[str, Any]) -> dict[str, Any]:
    """The per-bin statistics of the log-magnitude distance space of a spectrogram model."""
    return meta["log_magnitude_normalisation"] if shards.is_complex(meta) else meta["normalisation"]


def spectrogram_targets(logmag: np.ndarray, meta: dict[str, Any]) -> torch.Tensor:
    """[N, frames, bins] raw log magnitudes of real clips -> [N, 1, F, B] distance space."""
    norm = log_magnitude_normalisation(meta)
    x = scaling.normalise_spec(logmag, np.asarray(norm["mean"]), np.asarray(norm["std"]),
                               norm["clip_std"])
    return torch.from_numpy(x[:, None])


def note_targets(notes: np.ndarray, meta: dict[str, Any]) -> torch.Tensor:
    """[N, window, 3] raw notes -> [N, 3, window] scaled (the networks' layout)."""
    return torch.from_numpy(shards.to_network(notes, meta))


class Space:
    """Generator output -> the distance space (`project`), and the per-example distance."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.kind = meta["kind"]
        self.complex = shards.is_complex(meta)
        self.onehot = OneHotPitch.from_scaling(meta["note_scaling"]) \
            if self.kind == "notes" else None
        self.name = ("mean squared error of scaled notes" if self.kind == "notes" else
                     "L1 of normalised log magnitudes")
        if self.complex:
            norm, lm = meta["normalisation"], meta["log_magnitude_normalisation"]
            self.unscale = torch.tensor(norm["scale"], dtype=torch.float32)
            self.s = float(norm["compression_scale"])
            self.mean = torch.tensor(lm["mean"], dtype=torch.float32)
            self.div = torch.tensor(np.asarray(lm["std"]) * lm["clip_std"], dtype=torch.float32)

    def project(self, out: torch.Tensor) -> torch.Tensor:
        if self.onehot is not None and out.shape[1] != PIANO_CHANNELS:
            return self.onehot.expected(out)  # one-hot pitch: compared as scaled notes
        if not self.complex:
            return out
        c = out.float() * self.unscale                    # compressed parts [N, 2, F, B]
        c_mag = torch.sqrt(c[:, 0] ** 2 + c[:, 1] ** 2 + 1e-20)  # finite gradient at 0
        logmag = torch.log(self.s * torch.expm1(c_mag) + spectro.LOG_EPS)
        return ((logmag - self.mean) / self.div).clamp(-1.0, 1.0)[:, None]

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = (a.float() - b.float()).flatten(1)
        return diff.pow(2).mean(1) if self.kind == "notes" else diff.abs().mean(1)


def pitch_match(generated: np.ndarray, target_raw: np.ndarray, meta: dict[str, Any]
                ) -> np.ndarray:
    """Per example, the share of notes whose generated pitch (rounded, clamped) is the
    real one at the same position: generated [N, 3, window] scaled, target [N, window, 3]."""
    pitch = shards.from_network(generated, meta)[..., 0]
    return (pitch == np.rint(target_raw[..., 0])).mean(axis=1)


@dataclasses.dataclass
class Result:
    z: torch.Tensor           # [N, latent_dim] best latent per example
    distance: np.ndarray      # [N] its distance
    random_z: np.ndarray      # [N] mean distance of the restarts' starting points
    steps: int
    restarts: int
    seed: int


def invert(generator: torch.nn.Module, targets: torch.Tensor, space: Space, *,
           labels: torch.Tensor | None = None, steps: int = STEPS, restarts: int = RESTARTS,
           seed: int = 0, lr: float = LR, batch: int = BATCH,
           progress: Callable[[str], None] | None = None) -> Result:
    """Latents of `targets` (distance space, [N, ...]) under `generator` (eval mode; its
    weights are left untouched). `labels` [N]: class indices for a conditional generator."""
    n, dim = len(targets), int(generator.latent_dim)
    starts = latents_for_seeds([seed + r for r in range(restarts)], dim)    # [R, D]
    rows = n * restarts                                                     # row = i * R + r
    z0 = starts.repeat(n, 1)
    best_z, best_d = z0.clone(), torch.full((rows,), float("inf"))
    start_d = torch.empty(rows)
    generator.eval()
    frozen = [p.requires_grad for p in generator.parameters()]
    for p in generator.parameters():
        p.requires_grad_(False)
    say = progress or log.info
    t0 = last = time.perf_counter()
    try:
        for lo in range(0, rows, batch):
            idx = torch.arange(lo, min(lo + batch, rows))
            tgt, y = targets[idx // restarts], None if labels is None else labels[idx // restarts]
            z = z0[idx].clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
            for step in range(steps + 1):  # the last pass only scores the final z
                out = generator(z) if y is None else generator(z, y)
                d = space.distance(space.project(out), tgt)
                with torch.no_grad():
                    if step == 0:
                        start_d[idx] = d
                    better = d < best_d[idx]
                    best_d[idx] = torch.where(better, d, best_d[idx])
                    best_z[idx] = torch.where(better[:, None], z, best_z[idx])
                if step == steps:
                    break
                opt.zero_grad(set_to_none=True)
                d.sum().backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    z.clamp_(-1.0, 1.0)
                if time.perf_counter() - last >= PROGRESS_S:
                    last = time.perf_counter()
                    say(f"invert: rows {lo + 1}-{int(idx[-1]) + 1} of {rows} ({n} examples x "
                        f"{restarts} restarts), step {step + 1}/{steps}, mean distance "
                        f"{float(d.detach().mean()):.4f}, {last - t0:.0f} s")
    finally:
        for p, flag in zip(generator.parameters(), frozen):
            p.requires_grad_(flag)
    per = best_d.view(n, restarts)
    pick = per.argmin(1)
    z = best_z.view(n, restarts, dim)[torch.arange(n), pick]
    return Result(z=z.detach(), distance=per.min(1).values.numpy().astype(np.float64),
                  random_z=start_d.view(n, restarts).mean(1).numpy().astype(np.float64),
                  steps=steps, restarts=restarts, seed=seed)


@torch.no_grad()
def nearest_distance(targets: torch.Tensor, reference: torch.Tensor, space: Space,
                     chunk: int = 256) -> np.ndarray:
    """Per target, the distance to its nearest `reference` example (both in the space)."""
    out = torch.full((len(targets),), float("inf"))
    for lo in range(0, len(reference), chunk):
        ref = reference[lo:lo + chunk]
        for i, t in enumerate(targets):
            d = space.distance(ref, t.expand_as(ref)).min()
            out[i] = torch.minimum(out[i], d)
    return out.numpy().astype(np.float64)

