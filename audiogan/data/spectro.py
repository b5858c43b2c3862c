"""WaveGAN's `t_to_f` log-magnitude spectrogram (numpy and torch) and batched Griffin-Lim.

Recipe (DESIGN.md "Spectrograms"): STFT with n_fft 256, hop 128, periodic Hann window, no
centring, the end zero-padded so 16384 samples give ceil(16384 / 128) = 128 frames (as
`tf.signal.stft(x, 256, 128, pad_end=True)`); keep 128 of the 129 bins (drop the highest);
`log(|X| + 1e-6)`. Output [..., 128 frames, 128 bins].
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: numpy-only workers start faster without it
    import torch

N_FFT = 256
HOP_LENGTH = 128
N_BINS = 128
CLIP_SAMPLES = 16384
LOG_EPS = 1e-6

Array = Any  # np.ndarray | torch.Tensor


def n_frames(n_samples: int, hop_length: int = HOP_LENGTH) -> int:
    return math.ceil(n_samples / hop_length)


def _padded_length(n_samples: int) -> int:
    return (n_frames(n_samples) - 1) * HOP_LENGTH + N_FFT


def hann_periodic_np(n: int = N_FFT) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _stft_np(x: np.ndarray) -> np.ndarray:
    n = x.shape[-1]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, _padded_length(n) - n)]
    xp = np.pad(x, pad)
    frames = np.lib.stride_tricks.sliding_window_view(xp, N_FFT, axis=-1)[..., ::HOP_LENGTH, :]
    return np.fft.rfft(frames * hann_periodic_np(), n=N_FFT, axis=-1)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _stft_torch(x: "torch.Tensor") -> "torch.Tensor":
    import torch

    n = x.shape[-1]
    xp = torch.nn.functional.pad(x, (0, _padded_length(n) - n))
    frames = xp.unfold(-1, N_FFT, HOP_LENGTH)
    window = torch.hann_window(N_FFT, periodic=True, dtype=x.dtype, device=x.device)
    return torch.fft.rfft(frames * window, n=N_FFT, dim=-1)


def log_magnitude(audio: Array) -> Array:
    """[..., 16384] audio -> [..., 128, 128] log magnitudes; numpy in -> numpy out."""
    if _is_torch(audio):
        import torch

        x = audio if audio.is_floating_point() else audio.float()
        return torch.log(torch.abs(_stft_torch(x)[..., :N_BINS]) + LOG_EPS)
    x = np.asarray(audio)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
    out = np.log(np.abs(_stft_np(x)[..., :N_BINS]) + LOG_EPS)
    return out.astype(x.dtype, copy=False)


def _istft_torch(spec: "torch.Tensor", n_samples: int) -> "torch.Tensor":
    import torch

    """Least-squares inverse of `_stft_torch` (windowed overlap-add / sum of window^2)."""
    window = torch.hann_window(N_FFT, periodic=True, dtype=spec.real.dtype, device=spec.device)
    frames = torch.fft.irfft(spec, n=N_FFT, dim=-1) * window          # [N, F, n_fft]
    n_f = frames.shape[-2]
    length = (n_f - 1) * HOP_LENGTH + N_FFT
    fold = torch.nn.functional.fold
    out = fold(frames.transpose(1, 2), (1, length), (1, N_FFT), stride=(1, HOP_LENGTH))
    wsum = fold((window ** 2).expand(1, n_f, N_FFT).transpose(1, 2), (1, length), (1, N_FFT),
                stride=(1, HOP_LENGTH))
    out = out.reshape(spec.shape[0], length) / wsum.reshape(1, length).clamp_min(1e-8)
    return out[:, :n_samples]


def griffin_lim(logmag: "torch.Tensor", n_iter: int = 16, n_samples: int = CLIP_SAMPLES
                ) -> "torch.Tensor":
    """[N, frames, 128] log magnitudes -> [N, n_samples] audio (WaveGAN's f_to_t + GL).

    Starts from zero phase as WaveGAN does (deterministic); the dropped top bin is zero.
    """
    import torch

    logmag = torch.as_tensor(logmag)
    if logmag.dim() == 2:
        logmag = logmag.unsqueeze(0)
    mag = (torch.exp(logmag.float()) - LOG_EPS).clamp_min(0.0)
    mag = torch.nn.functional.pad(mag, (0, N_FFT // 2 + 1 - mag.shape[-1]))
    spec = torch.complex(mag, torch.zeros_like(mag))
    for _ in range(int(n_iter)):
        estimate = _stft_torch(_istft_torch(spec, n_samples))
        spec = mag * estimate / estimate.abs().clamp_min(1e-8)
    return _istft_torch(spec, n_samples)
