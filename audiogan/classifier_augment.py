"""What the digit classifier trains on: clean and round-tripped clips, augmented with what
evaluated spectrograms meet (issue 16).

The classifier judges spectrograms after the audio round trip (`audiogan.metrics.roundtrip`),
so it learns from both: a round-tripped copy of each training clip is computed once
(`round_trip_audio`, kept as audio) and each batch mixes clean and round-tripped
examples (`augment_batch`), then varies what a recording varies:

- additive noise at 10-30 dB SNR, in the audio domain on the round-tripped audio (the STFT
  of signal + noise is not a simple function of the two log magnitudes), then back to log
  magnitude;
- level changes of ±12 dB: an additive constant in log magnitude (20 log10 gain), before
  normalisation, so quiet parts fall to the clip as they would;
- circular time shifts of up to 12 frames (digits sit anywhere in their one-second window);
- one time mask (up to 16 frames) and one frequency mask (up to 12 bins), SpecAugment-style,
  filled with 0, the training mean in normalised units.

Every draw comes from the `torch.Generator` passed in: the same seed gives the same batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from audiogan.data import spectro
from audiogan.metrics import roundtrip


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    p_round_trip: float = 0.75      # share of a batch taken from the round-tripped copy
    p_noise: float = 0.67           # of those, the share with added noise
    snr_db: tuple[float, float] = (10.0, 30.0)
    level_db: float = 12.0          # gain drawn uniformly in [-level_db, +level_db]
    max_shift: int = 12             # frames, circular
    p_time_mask: float = 0.5
    time_mask: int = 16             # frames, at most
    p_freq_mask: float = 0.5
    freq_mask: int = 12             # bins, at most

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def round_trip_audio(x_network: np.ndarray, manifest: dict[str, Any], *, n_iter: int,
                     momentum: float = 0.0) -> torch.Tensor:
    """The round-tripped copy of a split as [N, 16384] float32 audio (64 KB a clip: 105 MB
    for FSDD's 1,600 training clips; log magnitudes are recomputed per batch, after the
    noise). Not float16: its rounding of near-silent samples raises the floor that
    log(|X| + 1e-6) shows in digital silence, which the metrics' float32 path does not do
    (results/quality/classifier.md: the old classifier's round-trip accuracy on FSDD fell
    from 0.975 to 0.69 with it)."""
    return roundtrip.to_audio(x_network, manifest, n_iter=n_iter, momentum=momentum)


class Normaliser:
    """The manifest's per-bin normalisation in torch: (x - mean) / std / clip_std, clipped."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        norm = manifest["normalisation"]
        self.mean = torch.tensor(norm["mean"], dtype=torch.float32)
        self.scale = torch.tensor(norm["std"], dtype=torch.float32) * float(norm["clip_std"])

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        return ((raw - self.mean) / self.scale).clamp_(-1.0, 1.0)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def add_noise(audio: torch.Tensor, snr_db: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """White Gaussian noise at `snr_db` [N] relative to each clip's mean power."""
    power = audio.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-12)
    sigma = torch.sqrt(power / 10.0 ** (snr_db[:, None] / 10.0))
    return audio + sigma * torch.randn(audio.shape, generator=gen)


def _shift(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Per-example circular roll along frames: x [N, 1, F, B], shifts [N] ints."""
    n_frames = x.shape[2]
    idx = (torch.arange(n_frames)[None, :] - shifts[:, None]) % n_frames
    return torch.gather(x, 2, idx[:, None, :, None].expand_as(x))


def _mask(x: torch.Tensor, dim: int, p: float, max_width: int, gen: torch.Generator
          ) -> torch.Tensor:
    """Zero one band of up to `max_width` along `dim` (2 frames, 3 bins) with probability p."""
    n, size = x.shape[0], x.shape[dim]
    on = torch.rand(n, generator=gen) < p
    width = torch.randint(1, max_width + 1, (n,), generator=gen) * on
    start = (torch.rand(n, generator=gen) * (size - width + 1)).long()
    pos = torch.arange(size)[None, :]
    band = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # [N, size]
    shape = [n, 1, 1, 1]
    shape[dim] = size
    return x.masked_fill(band.view(shape), 0.0)


def augment_batch(clean_raw: torch.Tensor, rt_audio: torch.Tensor, normalise: Normaliser,
                  gen: torch.Generator, params: AugmentParams = AugmentParams()
                  ) -> torch.Tensor:
    """One training batch: clean raw log magnitudes [N, F, B] and the same clips'
    round-tripped audio [N, 16384] -> augmented normalised spectrograms [N, 1, F, B].

    Labels are untouched (the order of examples is kept)."""
    n = len(clean_raw)
    raw = clean_raw.float().clone()
    use_rt = torch.rand(n, generator=gen) < params.p_round_trip
    noisy = torch.rand(n, generator=gen) < params.p_noise
    snr = _uniform(n, *params.snr_db, gen)
    if use_rt.any():
        audio = rt_audio[use_rt].float()
        with_noise = noisy[use_rt]
        if with_noise.any():
            audio[with_noise] = add_noise(audio[with_noise], snr[use_rt][with_noise], gen)
        raw[use_rt] = spectro.log_magnitude(audio)
    # A gain of g dB multiplies magnitudes by 10^(g/20): + g * ln(10) / 20 in log magnitude.
    gain_db = _uniform(n, -params.level_db, params.level_db, gen)
    raw += (gain_db * math.log(10.0) / 20.0)[:, None, None]
    x = normalise(raw)[:, None]
    shifts = torch.randint(-params.max_shift, params.max_shift + 1, (n,), generator=gen)
    x = _shift(x, shifts)
    x = _mask(x, 2, params.p_time_mask, params.time_mask, gen)
    return _mask(x, 3, params.p_freq_mask, params.freq_mask, gen)
