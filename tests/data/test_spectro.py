import numpy as np
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
