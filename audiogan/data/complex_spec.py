"""The complex-spectrogram representation (`audiogan preprocess ... --representation complex`):
real and imaginary parts of WaveGAN's STFT, invertible to audio without Griffin-Lim.

Framing is exactly the log-magnitude representation's (`audiogan.data.spectro`): n_fft 256,
hop 128, periodic Hann, no centring, the end zero-padded so 16384 samples give 128 frames,
bins 0..127 kept and the Nyquist bin (128, 8 kHz) dropped. A shard row holds the raw STFT,
float32 [2, frames, bins] = (real, imaginary); what the networks see is made on load:

  compression  c = log1p(|X| / s) * X / |X|   (c = 0 where X = 0), s = COMPRESSION_SCALE
               The magnitude is compressed, the phase kept. Why this form: (1) speech STFT
               magnitudes span ~100 dB, too much for a tanh output, and log1p is
               log-like above s (like the log-magnitude representation) but linear and
               finite through 0, so it is exactly invertible and needs no epsilon;
               (2) compressing the magnitude rather than each part (sign(re) log1p(|re|/s))
               keeps the compression phase-equivariant: a time shift rotates each bin's
               phase, and the network sees the same pattern rotated, not a pattern whose
               shape depends on where the phase happened to land. s = 1e-3 sits ~20 dB
               above the 16-bit quantisation floor of one bin (LSB / sqrt(12) * sqrt(sum
               w^2) ~ 9e-5): recording noise below it is compressed linearly towards 0.
  normalisation per frequency bin, zero-centred (the phase of speech is uniform: real and
               imaginary means are ~0), one scale for both parts (a phase rotation stays a
               rotation): x = c / scale_bin, clipped to [-1, 1], with
               scale_bin = min(peak_bin + HEADROOM_DB, BOUND): the bin's peak |c| over the
               training split plus 20 dB (above s, c grows by ln 10 per 20 dB), but never
               beyond BOUND = log1p(128 / s), the most any full-scale clip can reach (|X| <=
               sum of the window = 128). Why not the log-magnitude's mean / (3 std): most
               frames of a bin are quiet, and the loud ones, which carry the energy, reach
               ~10 RMS; clipping them at 3 RMS left 11.6 dB of SNR on sc09-mini. Why the
               headroom: the peak alone clipped 1.2e-4 of the values of sc09-mini's 7 test
               clips (statistics from its 12 training clips), the loudest ones: 25.4 dB
               SNR over its 20 clips; with it none clip (47.4 dB, all of it the Nyquist
               bin's loss).
               The per-bin means, standard deviations, RMS and peaks are recorded beside it.

The inverse (`synthesise`) is the least-squares inverse STFT (windowed overlap-add divided
by the sum of squared windows): exact to float rounding for samples 128 .. 16255, given
all 128 kept bins. What the representation cannot give back:
  - the Nyquist bin: whatever a frame had at 8 kHz. Speech has little there, but the last
    frame is cut off by the end padding (samples 16384.. are zeros), and that edge leaks
    into every bin, the dropped one included: the last half-frame is close, not exact.
  - the uncentred framing: samples 0-127 lie under one window only, a periodic Hann that
    starts at 0. Sample 0 is lost, and where the sum of squared windows is below
    ENVELOPE_FLOOR (samples 1-25, 1.6 ms) the inverse divides by the floor instead:
    scaled down, where exact division would amplify an inconsistent generated frame up to
    6,600x (a click at t = 0 that peak normalisation would then make the loudest thing).
Costs measured (SNR lost on real clips) in results/complex/README.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audiogan.data import spectro
from audiogan.data.stats import BinStats

REPRESENTATION = "complex"
LOG_MAGNITUDE = "log_magnitude"
REPRESENTATIONS = (LOG_MAGNITUDE, REPRESENTATION)
COMPRESSION = "log1p_magnitude"
COMPRESSION_SCALE = 1e-3
HEADROOM_DB = 20.0
ENVELOPE_FLOOR = 1e-2
CHANNELS = 2
EXAMPLE_SHAPE = (CHANNELS, spectro.N_BINS, spectro.N_BINS)

Array = Any  # np.ndarray | torch.Tensor


def _xp(x: Any) -> Any:
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def representation(manifest_or_meta: dict[str, Any]) -> str:
    """"complex" or "log_magnitude" (manifests from before the key are log magnitudes)."""
    return str(manifest_or_meta.get("representation", LOG_MAGNITUDE))


def analyse(audio: np.ndarray) -> np.ndarray:
    """[..., 16384] audio -> [..., 2, frames, 128] float32 raw (real, imaginary) STFT."""
    spec = spectro.stft(np.asarray(audio))[..., :spectro.N_BINS]
    return np.stack([spec.real, spec.imag], axis=-3).astype(np.float32)


def synthesise(raw: Array, n_samples: int = spectro.CLIP_SAMPLES,
               floor: float = ENVELOPE_FLOOR) -> Any:
    """[..., 2, frames, 128] raw STFT -> [..., n_samples] audio (torch in -> torch out,
    numpy in -> numpy out, in the input's float precision), the least-squares inverse STFT
    (module docstring). 129 bins in: the Nyquist bin is used (measurements only)."""
    import torch

    is_torch = _xp(raw) is torch
    x = torch.as_tensor(raw)
    x = x if x.is_floating_point() else x.float()
    hop, n_f = spectro.HOP_LENGTH, x.shape[-2]
    spec = torch.nn.functional.pad(torch.complex(x[..., 0, :, :], x[..., 1, :, :]),
                                   (0, spectro.N_FFT // 2 + 1 - x.shape[-1]))  # Nyquist = 0
    window = torch.hann_window(spectro.N_FFT, periodic=True, dtype=x.dtype)
    frames = torch.fft.irfft(spec, n=spectro.N_FFT, dim=-1) * window       # [..., F, n_fft]
    halves = frames.reshape(*frames.shape[:-1], 2, hop)
    out = torch.zeros(*frames.shape[:-2], n_f + 1, hop, dtype=x.dtype)
    out[..., :-1, :] += halves[..., 0, :]
    out[..., 1:, :] += halves[..., 1, :]
    w_sq = (window ** 2).view(2, hop)
    wsum = torch.zeros(n_f + 1, hop, dtype=x.dtype)
    wsum[:-1] += w_sq[0]
    wsum[1:] += w_sq[1]
    audio = (out / wsum.clamp_min(floor)).flatten(-2)[..., :n_samples]
    return audio if is_torch else audio.numpy()


def magnitude(raw: Array) -> Array:
    """[..., 2, F, B] raw -> [..., F, B] |X|."""
    return _xp(raw).hypot(raw[..., 0, :, :], raw[..., 1, :, :])


def log_magnitude(raw: Array) -> Array:
    """[..., 2, F, B] raw -> [..., F, B] log(|X| + 1e-6): the log-magnitude representation
    of the same clip (what `spectro.log_magnitude` gives for the audio, to float rounding)."""
    return _xp(raw).log(magnitude(raw) + spectro.LOG_EPS)


def _polar_scale(mag: Array, new_mag: Array) -> Array:
    """new_mag / mag, 0 where mag is 0 (X = 0 maps to 0 both ways)."""
    xp = _xp(mag)
    safe = xp.where(mag > 0, mag, xp.ones_like(mag))
    return xp.where(mag > 0, new_mag / safe, xp.zeros_like(mag))


def compress(raw: Array, scale: float = COMPRESSION_SCALE) -> Array:
    """[..., 2, F, B] raw -> compressed parts c = log1p(|X| / s) X / |X|."""
    xp = _xp(raw)
    mag = magnitude(raw)
    return raw * _polar_scale(mag, xp.log1p(mag / scale))[..., None, :, :]


def expand(c: Array, scale: float = COMPRESSION_SCALE) -> Array:
    """Inverse of `compress`: |X| = s * expm1(|c|), phase of c."""
    xp = _xp(c)
    mag = magnitude(c)
    return c * _polar_scale(mag, scale * xp.expm1(mag))[..., None, :, :]


class ComplexStats:
    """Training-split statistics of the compressed parts: per-bin mean and standard
    deviation of each part (`BinStats`, every frame one row) and per-bin peak |c|."""

    def __init__(self, n_bins: int = spectro.N_BINS, scale: float = COMPRESSION_SCALE) -> None:
        self.parts = BinStats(CHANNELS * n_bins)
        self.peak = np.zeros(n_bins)
        self.scale = scale

    @property
    def n(self) -> int:
        return self.parts.n

    def add(self, raw: np.ndarray) -> None:
        """raw: [N, 2, F, B] training examples."""
        c = compress(np.asarray(raw, np.float64), self.scale)
        self.parts.add(np.swapaxes(c, -3, -2).reshape(-1, CHANNELS * c.shape[-1]))
        if c.size:
            self.peak = np.maximum(self.peak, magnitude(c).max(axis=(0, 1)))

    def normalisation(self, headroom_db: float = HEADROOM_DB) -> dict[str, Any]:
        """The manifest's `normalisation` of a complex dataset (module docstring)."""
        mean = self.parts.mean.reshape(CHANNELS, -1)
        std = self.parts.std().reshape(CHANNELS, -1)
        rms = np.sqrt((mean ** 2 + std ** 2).sum(axis=0) / CHANNELS)
        bound = bound_for(self.scale)
        scale = np.minimum(self.peak + headroom_db / 20.0 * np.log(10.0), bound)
        return {"compression": COMPRESSION, "compression_scale": float(self.scale),
                "scale": scale.tolist(), "peak": self.peak.tolist(),
                "headroom_db": float(headroom_db), "bound": float(bound),
                "rms": rms.tolist(), "channel_mean": mean.tolist(),
                "channel_std": std.tolist(), "n_frames": int(self.parts.n)}


def bound_for(scale: float = COMPRESSION_SCALE) -> float:
    """The largest |c| a clip in [-1, 1] can give: log1p(sum of the window / s)."""
    return float(np.log1p(spectro.N_FFT / 2 / scale))


def _divisor(norm: dict[str, Any], xp: Any, like: Any) -> Any:
    scale = np.asarray(norm["scale"], np.float64)
    return xp.as_tensor(scale, dtype=like.dtype) if xp is not np else scale


def normalise(raw: Array, norm: dict[str, Any]) -> Array:
    """[..., 2, F, B] raw -> network values in [-1, 1] (float32 for numpy input)."""
    xp = _xp(raw)
    x = raw if xp is not np else np.asarray(raw, np.float64)
    c = compress(x, norm["compression_scale"]) / _divisor(norm, xp, x)
    return c.clip(-1.0, 1.0) if xp is not np else np.clip(c, -1.0, 1.0).astype(np.float32)


def denormalise(x: Array, norm: dict[str, Any]) -> Array:
    """Network values -> raw STFT parts (exact inverse of `normalise` inside the clip)."""
    xp = _xp(x)
    x = x if xp is not np else np.asarray(x, np.float64)
    raw = expand(x * _divisor(norm, xp, x), norm["compression_scale"])
    return raw if xp is not np else raw.astype(np.float32)


def manifest_fields(stats: ComplexStats, log_magnitude_normalisation: dict[str, Any]
                    ) -> dict[str, Any]:
    """What a complex dataset's manifest says about its representation, with the
    log-magnitude statistics of the same clips (the space inversion distances are measured
    in, so they compare with log-magnitude runs)."""
    return {
        "representation": REPRESENTATION,
        "complex": {
            "layout": "[real, imaginary] x [frames, bins] of the raw STFT (float32)",
            "compression": f"c = log1p(|X| / s) * X / |X|, s = {COMPRESSION_SCALE} "
                           "(magnitude compressed, phase kept)",
            "normalisation": "x = c / scale, clipped to [-1, 1]; scale = min(peak |c| of "
                             f"the bin over train + {HEADROOM_DB:g} dB, the bound of "
                             "full-scale audio log1p(128 / s))",
            "dropped": "the Nyquist bin (129th, 8 kHz): the inverse sets it to 0 (also "
                       "what the end padding's edge leaked there: samples 16256-16383 "
                       "come back close, not exact)",
            "framing": "uncentred: frame t covers samples 128t .. 128t + 255, end "
                       "zero-padded; samples 0-127 lie under one window only (sample 0 is "
                       "lost, samples 1-25 scaled down by the envelope floor "
                       f"{ENVELOPE_FLOOR})",
            "inverse": f"least-squares inverse STFT, window envelope floored at "
                       f"{ENVELOPE_FLOOR}; no Griffin-Lim",
        },
        "normalisation": stats.normalisation(),
        "log_magnitude_normalisation": log_magnitude_normalisation,
    }
