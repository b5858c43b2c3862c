"""The audio round trip the listening metrics score after (audiogan.metrics.roundtrip), and
the classifier's augmentations (audiogan.classifier_augment)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiogan.classifier_augment import AugmentParams, Normaliser, augment_batch
from audiogan.data import shards, spectro
from audiogan.metrics import roundtrip


def _speech_like(n: int, seed: int) -> np.ndarray:
    """Consistent spectrograms (those of real audio): harmonic tones with a moving pitch and
    an envelope, digital silence around them, as `log_magnitude` of the audio."""
    rng = np.random.default_rng(seed)
    t = np.arange(spectro.CLIP_SAMPLES) / 16000.0
    audio = np.zeros((n, spectro.CLIP_SAMPLES))
    for i in range(n):
        f0 = rng.uniform(100, 200) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000.0
        env = np.exp(-0.5 * ((t - rng.uniform(0.3, 0.7)) / 0.12) ** 2)
        env[env < 1e-3] = 0.0
        audio[i] = env * sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.3
    return spectro.log_magnitude(audio.astype(np.float32))


@pytest.fixture(scope="module")
def speech():
    raw = _speech_like(6, 0)
    manifest = {"kind": "spectrogram", "example_shape": [128, 128],
                "normalisation": {"mean": raw.mean((0, 1)).tolist(),
                                  "std": (raw.std((0, 1)) + 1e-3).tolist(), "clip_std": 3.0}}
    return raw, shards.to_network(raw, manifest), manifest


def test_round_trip_of_a_real_spectrogram_is_close_and_batching_does_not_change_it(speech):
    _, x, manifest = speech
    rt = roundtrip.round_trip(x, manifest, n_iter=16)
    assert rt.shape == x.shape and rt.dtype == np.float32
    assert np.abs(rt).max() <= 1.0
    # Sanity bound: 16 Griffin-Lim iterations from zero phase do not reproduce the phase,
    # but the magnitudes of a consistent spectrogram come back close (network units span 2).
    assert np.abs(rt - x).mean() < 0.05
    assert np.corrcoef(rt.ravel(), x.ravel())[0, 1] > 0.95
    one_by_one = np.concatenate([roundtrip.round_trip(x[i:i + 1], manifest, n_iter=16)
                                 for i in range(len(x))])
    np.testing.assert_allclose(roundtrip.round_trip(x, manifest, n_iter=16, batch_size=4),
                               one_by_one, atol=1e-5)
    np.testing.assert_allclose(rt, one_by_one, atol=1e-5)


def test_round_trip_changes_what_cannot_be_heard(speech):
    _, x, manifest = speech
    checker = np.where((np.arange(128)[:, None] + np.arange(128)[None, :]) % 2, 1.0, -1.0)
    x_cb = np.broadcast_to(checker, x.shape).astype(np.float32)
    rt = roundtrip.round_trip(x_cb, manifest, n_iter=16)
    # A 1-pixel loud/silent checkerboard is no STFT of any audio: it comes back smeared.
    assert np.abs(rt - x_cb).mean() > 5 * np.abs(roundtrip.round_trip(x, manifest, n_iter=16)
                                                  - x).mean()


def test_augmentations_keep_shapes_and_order_and_are_deterministic_by_seed(speech):
    raw, x, manifest = speech
    audio = roundtrip.to_audio(x, manifest, n_iter=4)
    normalise = Normaliser(manifest)
    clean = torch.as_tensor(raw)

    def batch(seed: int, params: AugmentParams = AugmentParams()) -> torch.Tensor:
        return augment_batch(clean, audio, normalise, torch.Generator().manual_seed(seed), params)

    a, b, c = batch(0), batch(0), batch(1)
    assert a.shape == (len(raw), 1, 128, 128) and a.dtype == torch.float32
    assert float(a.abs().max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    # With every augmentation off the batch is the clean clips, normalised, in order
    # (labels stay aligned: augment_batch never reorders examples).
    off = AugmentParams(p_round_trip=0.0, p_noise=0.0, level_db=0.0, max_shift=0,
                        p_time_mask=0.0, p_freq_mask=0.0)
    torch.testing.assert_close(batch(3, off), torch.as_tensor(shards.to_network(raw, manifest)),
                               atol=1e-5, rtol=0)
    # Level only: +-12 dB is an additive constant of at most 12 ln(10)/20 in log magnitude.
    level = AugmentParams(p_round_trip=0.0, p_noise=0.0, max_shift=0, p_time_mask=0.0,
                          p_freq_mask=0.0)
    unclipped = (torch.as_tensor(shards.to_network(raw, manifest)).abs() < 0.5)
    shift = (batch(5, level) - batch(3, off))[unclipped] * normalise.scale.expand(
        len(raw), 1, 128, 128)[unclipped]
    assert float(shift.abs().max()) <= 12 * np.log(10) / 20 + 1e-4
    # Round trip + noise only: each example is the log magnitude of its round-tripped audio
    # with noise; the noise fills the digital silence around the tone.
    noisy = AugmentParams(p_round_trip=1.0, p_noise=1.0, level_db=0.0, max_shift=0,
                          p_time_mask=0.0, p_freq_mask=0.0)
    silent = torch.as_tensor(raw) < -13.0
    assert float(batch(0, noisy)[:, 0][silent].mean()) > float(batch(3, off)[:, 0][silent].mean())
