"""Rendering backends, the fast Griffin-Lim's equivalence, and the sampling benchmark."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from audiogan import render
from audiogan.data import spectro
from audiogan.data.notes import notes_to_midi


def test_fast_griffin_lim_equals_reference():
    torch.manual_seed(0)
    audio = torch.randn(3, 16384) * torch.linspace(0, 1, 16384)
    logmag = spectro.log_magnitude(audio)
    ref = spectro.griffin_lim(logmag, n_iter=4)
    fast = render.griffin_lim(logmag, n_iter=4)
    assert fast.shape == ref.shape == (3, 16384) and fast.dtype == torch.float32
    assert float((fast - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    # More iterations bring the magnitudes closer to the target (Griffin-Lim converges).
    err = [float((spectro.log_magnitude(render.griffin_lim(logmag, n_iter=k)).exp()
                  - logmag.exp()).abs().mean()) for k in (1, 8)]
    assert err[1] < err[0]


def test_render_backends_label_their_audio():
    notes = np.array([[60, 0.0, 0.5], [64, 0.5, 0.5], [67, 0.5, 1.0]])
    pm = notes_to_midi(notes)
    assert render.available_backends()[-1] == "sine"
    for backend in render.available_backends():
        audio, name = render.render_midi(pm, 16000, backend)
        assert name == backend and audio.dtype == np.float32
        assert len(audio) >= int(2.0 * 16000) and np.abs(audio).max() == pytest.approx(0.9)
    with pytest.raises(ValueError, match="not available"):
        render.render_midi(pm, 16000, "nonexistent")


def test_bench_sample_quick(tmp_path):
    from audiogan.bench import sample

    path = sample.run(argparse.Namespace(out=str(tmp_path), quick=True, source=None))
    result = json.load(open(path))
    assert result["bench"] == "sample" and result["quick"] is True
    assert result["spectogan"]["cpu_time_1_thread"]["generator_gflop_per_batch"] == pytest.approx(
        4 * sample.spec_generator_flops(4) / 1e9)
    assert result["pianogan"]["best_backend"] in result["pianogan"]["backends"]
    assert result["spectogan"]["wall_clock"]["targets"] == sample.TARGETS


def test_spec_generator_flop_count_matches_hand_count():
    from audiogan.bench.sample import spec_generator_flops

    # d=64: dense 2*100*16384, then 2*25*a*b*H*W per transposed convolution.
    hand = 2 * 100 * 16384 + 2 * 25 * (1024 * 512 * 16 + 512 * 256 * 64 + 256 * 128 * 256
                                       + 128 * 64 * 1024 + 64 * 1 * 4096)
    assert spec_generator_flops(64) == hand == 1_694_105_600
