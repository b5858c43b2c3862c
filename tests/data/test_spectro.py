import numpy as np
import pytest
import torch

from audiogan.data import spectro


def _direct(x):
    """The recipe written out: pad end, periodic Hann, explicit DFT, drop top bin, log."""
    n_frames = -(-len(x) // 128)
    xp = np.concatenate([x, np.zeros((n_frames - 1) * 128 + 256 - len(x))])
    n = np.arange(256)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / 256)
    basis = np.exp(-2j * np.pi * np.outer(np.arange(129), n) / 256)
    out = np.empty((n_frames, 128))
    for t in range(n_frames):
        out[t] = np.log(np.abs(basis @ (xp[t * 128:t * 128 + 256] * win))[:128] + 1e-6)
    return out


def test_sine_matches_direct_recipe():
    x = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16384) / 16000)
    got = spectro.log_magnitude(x)
    assert got.shape == (128, 128)
    np.testing.assert_allclose(got, _direct(x), atol=1e-6)
    # 1 kHz sits in bin 16 (62.5 Hz per bin) and dominates every full frame
    assert (got[:-1].argmax(axis=1) == 16).all()


def test_numpy_and_torch_agree_batched():
    x = np.random.default_rng(0).normal(size=(3, 16384)) * 0.1
    a = spectro.log_magnitude(x)
    b = spectro.log_magnitude(torch.from_numpy(x)).numpy()
    assert a.shape == b.shape == (3, 128, 128)
    np.testing.assert_allclose(a, b, atol=1e-9)
    c = spectro.log_magnitude(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(a, c, atol=2e-3)


def test_griffin_lim_length_and_reconstruction():
    x = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16384) / 16000)
    logmag = torch.from_numpy(spectro.log_magnitude(x)).float()
    target = np.exp(logmag.numpy())

    def error(n_iter):
        y = spectro.griffin_lim(torch.stack([logmag, logmag]), n_iter=n_iter)
        assert y.shape == (2, 16384) and torch.isfinite(y).all()
        assert torch.equal(y[0], y[1])  # batched items are independent
        mag = np.exp(spectro.log_magnitude(y[0].double().numpy()))
        return np.abs(mag - target).mean() / target.mean()

    e0, e16 = error(0), error(16)
    assert e16 < 0.05 < e0  # iterations recover the magnitudes of the known tone


def reference_griffin_lim(logmag, n_iter, n_samples=16384):
    """Griffin-Lim written out plainly in float64 numpy, the slow reference for the one
    implementation (`spectro.griffin_lim`): magnitudes from the log (top bin zero), zero
    initial phase; each iteration a least-squares inverse STFT (overlap-add of windowed
    frames / sum of squared windows, cut to n_samples), the STFT of that (end padded), and
    the target magnitudes with the new phase."""
    n_fft, hop = 256, 128
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    mag = np.maximum(np.exp(np.asarray(logmag, np.float64)) - 1e-6, 0.0)
    mag = np.concatenate([mag, np.zeros(mag.shape[:-1] + (1,))], axis=-1)
    n_f = mag.shape[-2]
    length = (n_f - 1) * hop + n_fft

    def istft(spec):
        frames = np.fft.irfft(spec, n=n_fft, axis=-1) * window
        out, wsum = np.zeros(spec.shape[:-2] + (length,)), np.zeros(length)
        for t in range(n_f):
            out[..., t * hop:t * hop + n_fft] += frames[..., t, :]
            wsum[t * hop:t * hop + n_fft] += window ** 2
        return (out / np.maximum(wsum, spectro.WSUM_FLOOR))[..., :n_samples]

    def stft(x):
        xp = np.concatenate([x, np.zeros(x.shape[:-1] + (length - n_samples,))], axis=-1)
        frames = np.stack([xp[..., t * hop:t * hop + n_fft] for t in range(n_f)], axis=-2)
        return np.fft.rfft(frames * window, axis=-1)

    spec = mag.astype(np.complex128)
    for _ in range(n_iter):
        est = stft(istft(spec))
        spec = mag * est / np.maximum(np.abs(est), 1e-8)
    return istft(spec)


def test_griffin_lim_equals_the_plain_reference():
    torch.manual_seed(0)
    audio = torch.randn(3, 16384) * torch.linspace(0, 1, 16384)
    logmag = spectro.log_magnitude(audio)
    for n_iter in (0, 1, 4):
        got = spectro.griffin_lim(logmag, n_iter=n_iter)
        want = reference_griffin_lim(logmag.double().numpy(), n_iter)
        assert got.shape == (3, 16384) and got.dtype == torch.float32
        assert np.abs(got.double().numpy() - want).max() <= 1e-5 * np.abs(want).max()
    # A numpy array in, one example without a batch axis: the same audio.
    one = spectro.griffin_lim(logmag[1].numpy(), n_iter=2)
    assert one.shape == (1, 16384)
    assert torch.allclose(one[0], spectro.griffin_lim(logmag, n_iter=2)[1], atol=1e-6)
    # More iterations bring the magnitudes closer to the target (Griffin-Lim converges).
    err = [float((spectro.log_magnitude(spectro.griffin_lim(logmag, n_iter=k)).exp()
                  - logmag.exp()).abs().mean()) for k in (1, 8)]
    assert err[1] < err[0]


def _griffin_lim_before_momentum(logmag, n_iter, n_samples=16384):
    """`spectro._griffin_lim` as it was before `momentum` existed (commit 6f95cc7), copied
    verbatim but for the window-sum floor of the first half-frame (`WSUM_FLOOR`, the click
    fix): momentum 0 must give bit-identical audio."""
    from audiogan.data.spectro import HOP_LENGTH, LOG_EPS, N_FFT

    hop = HOP_LENGTH
    x = logmag.unsqueeze(0) if logmag.dim() == 2 else logmag
    n, n_f = x.shape[0], x.shape[1]
    mag = (torch.exp(x) - LOG_EPS).clamp_min_(0.0)
    mag = torch.nn.functional.pad(mag, (0, N_FFT // 2 + 1 - mag.shape[-1]))
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float32)
    length = (n_f + 1) * hop
    w_sq = (window ** 2).view(2, hop)
    wsum = torch.zeros(n_f + 1, hop)
    wsum[:-1] += w_sq[0]
    wsum[1:] += w_sq[1]
    inv_wsum = 1.0 / wsum.clamp_min(spectro.WSUM_FLOOR)
    keep = torch.zeros(n_f + 1, hop)
    keep.view(-1)[:n_samples] = 1.0
    inv_wsum_keep = inv_wsum * keep

    def to_audio_blocks(spec, scale):
        frames = torch.fft.irfft(spec, n=N_FFT, dim=-1).mul_(window).view(n, n_f, 2, hop)
        out = torch.zeros(n, n_f + 1, hop)
        out[:, :-1] += frames[:, :, 0]
        out[:, 1:] += frames[:, :, 1]
        return out.mul_(scale)

    spec = torch.complex(mag, torch.zeros_like(mag))
    for _ in range(n_iter):
        blocks = to_audio_blocks(spec, inv_wsum_keep)
        frames = blocks.view(n, length).unfold(-1, N_FFT, hop)
        est = torch.fft.rfft(frames * window, n=N_FFT, dim=-1)
        re_im = torch.view_as_real(est)
        norm = torch.hypot(re_im[..., 0], re_im[..., 1]).clamp_min_(1e-8)
        re_im.mul_((mag / norm).unsqueeze(-1))
        spec = est
    return to_audio_blocks(spec, inv_wsum).view(n, length)[:, :n_samples].contiguous()


def test_momentum_zero_is_bit_identical_to_the_plain_algorithm():
    torch.manual_seed(1)
    logmag = spectro.log_magnitude(torch.randn(2, 16384) * torch.linspace(0, 1, 16384))
    with torch.inference_mode():
        before = _griffin_lim_before_momentum(logmag, 5)
    assert torch.equal(spectro.griffin_lim(logmag, n_iter=5), before)
    assert torch.equal(spectro.griffin_lim(logmag, n_iter=5, momentum=0.0), before)


def test_momentum_is_librosas_fast_griffin_lim_and_converges_faster():
    """Momentum m: each iteration projects rebuilt - m / (1 + m) * previous rebuilt
    (librosa.griffinlim's form of Perraudin et al. 2013); against a float64 numpy
    reference of that, and faster convergence than the plain algorithm."""
    torch.manual_seed(0)
    audio = torch.randn(2, 16384) * torch.linspace(0, 1, 16384)
    logmag = spectro.log_magnitude(audio)
    n_fft, hop, m = 256, 128, 0.99
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    mag = np.maximum(np.exp(logmag.double().numpy()) - 1e-6, 0.0)
    mag = np.concatenate([mag, np.zeros(mag.shape[:-1] + (1,))], axis=-1)
    length = 127 * hop + n_fft

    def istft(spec):
        frames = np.fft.irfft(spec, n=n_fft, axis=-1) * window
        out, wsum = np.zeros(spec.shape[:-2] + (length,)), np.zeros(length)
        for t in range(128):
            out[..., t * hop:t * hop + n_fft] += frames[..., t, :]
            wsum[t * hop:t * hop + n_fft] += window ** 2
        return (out / np.maximum(wsum, spectro.WSUM_FLOOR))[..., :16384]

    def stft(x):
        xp = np.concatenate([x, np.zeros(x.shape[:-1] + (length - 16384,))], axis=-1)
        return np.fft.rfft(np.stack([xp[..., t * hop:t * hop + n_fft] for t in range(128)],
                                    axis=-2) * window, axis=-1)

    spec, prev = mag.astype(np.complex128), None
    for _ in range(6):
        rebuilt = stft(istft(spec))
        angles = rebuilt if prev is None else rebuilt - m / (1 + m) * prev
        spec, prev = mag * angles / np.maximum(np.abs(angles), 1e-8), rebuilt
    want = istft(spec)
    got = spectro.griffin_lim(logmag, n_iter=6, momentum=m).double().numpy()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()

    def inconsistency(momentum):
        y = spectro.griffin_lim(logmag, n_iter=16, momentum=momentum)
        return float((spectro.log_magnitude(y).exp() - logmag.exp()).norm()
                     / logmag.exp().norm())

    assert inconsistency(0.99) < inconsistency(0.0)
    with pytest.raises(ValueError, match="momentum"):
        spectro.griffin_lim(logmag, n_iter=1, momentum=1.0)


def test_no_click_at_the_start_of_a_clip_that_starts_at_once():
    """A digit that starts at t = 0 (as FSDD clips do): the Griffin-Lim audio's loudest
    part is the sound, not the first half-frame (the window-sum floor, WSUM_FLOOR)."""
    t = torch.arange(16384) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t) * torch.exp(-t * 3)   # loud from sample 0
    audio = spectro.griffin_lim(spectro.log_magnitude(tone[None]), n_iter=16)[0]
    head, rest = audio[:128].abs().max(), audio[128:].abs().max()
    assert head <= 1.5 * rest
