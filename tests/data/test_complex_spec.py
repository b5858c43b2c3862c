"""The complex-spectrogram representation: exact inverse, compression, preprocessing (the
stage's bookkeeping without Ray), the manifest, and networks shaped by it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from audiogan import cli
from audiogan.builders import build_critic, build_generator
from audiogan.config import resolve
from audiogan.data import audio, complex_spec, perfile, preprocess, shards, sources, spectro
from audiogan.errors import UserError
from data_fixtures import tone, write_wav

HALF = spectro.HOP_LENGTH


def _signal(n: int = 16384, seed: int = 0) -> np.ndarray:
    """A chirp plus noise, loud from the first sample (no silent start to hide errors)."""
    t = np.arange(n) / 16000
    rng = np.random.default_rng(seed)
    return 0.5 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.05 * rng.standard_normal(n)


def _tones(n: int = 16384) -> np.ndarray:
    """Tones on bin centres (k * 62.5 Hz, k <= 126): a periodic-Hann frame of each has
    energy in bins k-1..k+1 only, so nothing in the dropped Nyquist bin."""
    t = np.arange(n) / 16000
    rng = np.random.default_rng(3)
    return sum(a * np.sin(2 * np.pi * k * 62.5 * t + p) for k, a, p in
               zip((3, 17, 40, 90, 126), (0.3, 0.2, 0.15, 0.1, 0.05), rng.uniform(0, 6, 5)))


def _parts64(x: np.ndarray) -> np.ndarray:
    spec = spectro.stft(np.asarray(x, np.float64))[..., :128]
    return np.stack([spec.real, spec.imag], axis=-3)


def test_round_trip_is_exact_away_from_the_first_half_frame():
    x = _tones()
    peak = np.abs(x).max()
    raw = complex_spec.analyse(x)
    assert raw.shape == (2, 128, 128) and raw.dtype == np.float32
    stats = complex_spec.ComplexStats()
    stats.add(raw[None])
    norm = stats.normalisation()
    through_network = shards.from_network(  # compression, normalisation, clip, float32
        shards.to_network(raw[None], {"kind": "spectrogram", "representation": "complex",
                                      "normalisation": norm}),
        {"kind": "spectrogram", "representation": "complex", "normalisation": norm})[0]
    for parts, tol in ((_parts64(x), 1e-12), (raw, 1e-6), (through_network, 1e-5)):
        y = np.asarray(complex_spec.synthesise(parts), np.float64)
        assert y.shape == (16384,)
        # Exact away from the first and last half-frame. The first lies under one window
        # that starts at 0; the last frame is cut by the end padding, which leaks into
        # the dropped Nyquist bin: close there, not exact.
        assert np.abs(y[HALF:-HALF] - x[HALF:-HALF]).max() <= tol * peak
        assert np.abs(y[-HALF:] - x[-HALF:]).max() <= 1e-2 * peak
    assert abs(y[0]) < 1e-9 * peak  # sample 0: the window is 0 there, it is lost
    # A generic signal loses what was in the Nyquist bin: small for this chirp + noise.
    z = _signal()
    err = np.asarray(complex_spec.synthesise(_parts64(z))) - z
    assert 10 * np.log10((z[HALF:] ** 2).sum() / (err[HALF:] ** 2).sum()) > 30
    assert torch.is_tensor(complex_spec.synthesise(torch.from_numpy(raw)))


def test_compression_and_normalisation_invert_and_keep_phase():
    raw = _parts64(np.stack([_signal(seed=1), 0.01 * _signal(seed=2)]))
    raw[0, :, 5, 7] = 0.0  # X = 0 maps to 0 both ways
    c = complex_spec.compress(raw)
    np.testing.assert_allclose(complex_spec.expand(c), raw, rtol=1e-9, atol=1e-12)
    assert np.all(c[0, :, 5, 7] == 0)
    # phase kept: c and X point the same way
    np.testing.assert_allclose(np.arctan2(c[:, 1], c[:, 0])[np.abs(raw[:, 0]) > 1e-3],
                               np.arctan2(raw[:, 1], raw[:, 0])[np.abs(raw[:, 0]) > 1e-3],
                               atol=1e-9)
    stats = complex_spec.ComplexStats()
    stats.add(raw)
    norm = stats.normalisation()
    x = complex_spec.normalise(raw, norm)
    assert x.dtype == np.float32 and np.abs(x).max() <= 1.0
    back = complex_spec.denormalise(x, norm).astype(np.float64)
    np.testing.assert_allclose(back, raw, rtol=2e-5, atol=1e-6 * np.abs(raw).max())
    # torch gives the same, and the log magnitudes are the log-magnitude representation's
    np.testing.assert_allclose(complex_spec.normalise(torch.from_numpy(raw), norm).numpy(), x,
                               atol=1e-6)
    clips = np.stack([_signal(seed=1), 0.01 * _signal(seed=2)])
    np.testing.assert_allclose(complex_spec.log_magnitude(_parts64(clips)),
                               spectro.log_magnitude(clips), atol=1e-9)


@pytest.fixture(scope="module")
def complex_data(tmp_path_factory) -> tuple[str, dict, str]:
    """wav-dir of six tones preprocessed as complex spectrograms (no Ray: the per-file
    function's table goes straight to the stage's bookkeeping)."""
    root = tmp_path_factory.mktemp("cx")
    src, out = root / "src", str(root / "out")
    for i, label in enumerate(["a", "a", "b", "b", "c", "c"]):
        os.makedirs(src / label, exist_ok=True)
        write_wav(src / label / f"t{i}.wav", tone(0.8, freq=300 + 150 * i, amp=0.3 + 0.1 * i))
    items = sources.list_items("wav-dir", str(src))
    params = perfile.Params("spectrogram", 128, 128, False, "complex")
    manifest = preprocess.run("wav-dir", str(src), out, params, items=items,
                              tables=[perfile.process_batch(items, params)])
    return out, manifest, str(src)


def test_preprocess_complex_manifest_and_the_whole_path(complex_data):
    out, m, src = complex_data
    assert m["representation"] == "complex" and m["example_shape"] == [2, 128, 128]
    assert m["params"]["representation"] == "complex"
    for key in ("dropped", "framing", "compression", "inverse"):
        assert m["complex"][key]
    norm = m["normalisation"]
    assert norm["compression"] == "log1p_magnitude" and len(norm["peak"]) == 128
    assert np.asarray(norm["channel_mean"]).shape == (2, 128)
    assert len(m["log_magnitude_normalisation"]["mean"]) == 128
    ex = shards.load_split(out, "train", manifest=m)
    assert ex.x.shape[1:] == (2, 128, 128) and np.abs(ex.x).max() <= 1.0
    # The whole path: shard -> network values (float32, clipped) -> raw -> audio.
    for x, key in zip(ex.x, ex.keys):
        path = os.path.join(src, key.split("#")[0])
        clip, _ = audio.clip_from_wav(open(path, "rb").read())
        back = complex_spec.synthesise(shards.from_network(x[None], m))[0]
        err = back[HALF:] - clip[HALF:]
        assert 10 * np.log10((clip[HALF:] ** 2).sum() / (err ** 2).sum()) > 60
    # The manifest's log-magnitude statistics are those of the log-magnitude representation.
    raw = shards.load_split(out, "train", scaled=False, manifest=m).x
    lm = complex_spec.log_magnitude(raw.astype(np.float64)).reshape(-1, 128)
    np.testing.assert_allclose(m["log_magnitude_normalisation"]["mean"], lm.mean(0), atol=1e-6)


def test_networks_take_their_channels_from_the_manifest(complex_data):
    _, m, _ = complex_data
    cfg = resolve("spectogan-complex-cpu", {"model.d": 1})
    assert cfg.data.representation == "complex" and cfg.model.family == "spectogan"
    g, c = build_generator(cfg, m["example_shape"]), build_critic(cfg, m["example_shape"])
    x = g(torch.zeros(3, cfg.model.latent_dim))
    assert x.shape == (3, 2, 128, 128) and c(x).shape == (3,)
    one = build_generator(resolve("spectogan-cpu", {"model.d": 1}), [128, 128])
    assert one(torch.zeros(1, 100)).shape == (1, 1, 128, 128)
    with pytest.raises(UserError, match=r"\[C, 128, 128\]"):
        build_generator(cfg, [2, 64, 64])
    assert resolve("spectogan-complex").data.representation == "complex"


def test_complex_training_data_checks(complex_data, tmp_path, capsys):
    from audiogan.train.run import check_data_matches

    out, m, src = complex_data
    with pytest.raises(UserError, match="holds complex ones"):
        check_data_matches(resolve("spectogan-cpu"), m, out)
    check_data_matches(resolve("spectogan-complex-cpu"), m, out)
    from audiogan.builders import check_objective_available

    with pytest.raises(UserError, match="metrics.reference_data"):
        check_objective_available(resolve("spectogan-complex-cpu"), out)
    assert cli.main(["preprocess", "midi-dir", "--source", src, "--out", str(tmp_path / "o"),
                     "--representation", "complex"]) == 2
    assert "applies to audio sources" in capsys.readouterr().err
    json.dumps(m)  # the manifest is plain JSON
