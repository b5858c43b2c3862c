"""Rendering backends, the fast Griffin-Lim's equivalence, and the sampling benchmark."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from audiogan import render
from audiogan.config import DataConfig
from audiogan.data import spectro
from audiogan.data.notes import notes_to_midi


def test_sampling_and_tensorboard_invert_with_the_one_griffin_lim(monkeypatch, tmp_path):
    """One Griffin-Lim (`spectro.griffin_lim`, compared with a plain reference in
    tests/data/test_spectro.py) behind `audiogan sample` and the TensorBoard audio."""
    from audiogan.builders import build_generator, build_tensorboard
    from audiogan.config import resolve
    from audiogan.data.labels import LabelMap

    assert not hasattr(render, "griffin_lim")
    calls = []
    one = spectro.griffin_lim

    def spy(logmag, n_iter=16, **kw):
        calls.append((tuple(logmag.shape), n_iter))
        return one(logmag, n_iter=n_iter, **kw)

    monkeypatch.setattr(spectro, "griffin_lim", spy)
    logmag = spectro.log_magnitude(torch.randn(2, 16384))
    audio = render.spectrograms_to_audio(logmag.numpy(), n_iter=3)
    assert audio.shape == (2, 16384) and calls == [((2, 128, 128), 3)]

    cfg = resolve("spectogan-cpu", ["model.d=1", "data.griffin_lim_iters=2"])
    manifest = {"kind": "spectrogram", "example_shape": [128, 128],
                "normalisation": {"mean": [-4.0] * 128, "std": [2.0] * 128, "clip_std": 3.0}}
    board = build_tensorboard(cfg, str(tmp_path / "tb"), manifest)
    try:
        board.media(build_generator(cfg, [128, 128]), step=1)
    finally:
        board.close()
    assert calls[1:] == [((4, 128, 128), 2)]
    # a conditional generator gets the evaluator's labels for the same seeds
    cond = cfg.override({"model.conditional": True})
    board = build_tensorboard(cond, str(tmp_path / "tb2"), manifest,
                              LabelMap(("0", "1", "2"), "sorted", {}, (1, 1, 1)))
    try:
        assert board.labels is not None and len(board.labels) == 4
        board.media(build_generator(cond, [128, 128], n_classes=3), step=1)
    finally:
        board.close()
    assert calls[2:] == [((4, 128, 128), 2)]


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
    # librosa's Griffin-Lim timed beside ours on the same clips, with the settings recorded.
    for block in result["spectogan"].values():
        ref = block["griffin_lim_reference"]
        assert ref["implementation"] == "librosa.griffinlim"
        assert ref["settings"]["n_iter"] == block["griffin_lim_iters"] == 2
        assert ref["settings"]["momentum"] == 0.0 and ref["settings"]["init"] is None
        assert ref["clips"] == block["batch"]
        assert min(ref["librosa_s_per_batch"]) > 0 and min(ref["audiogan_s_per_batch"]) > 0
        assert ref["librosa_time_over_audiogan"] == pytest.approx(
            min(ref["librosa_s_per_batch"]) / min(ref["audiogan_s_per_batch"]), rel=0.02)
        conv = ref["spectral_convergence"]
        assert 0 < conv["audiogan"] < 1 and 0 < conv["librosa"] < 1
        # and both again at the default momentum, which the end-to-end timing runs
        fast = block["griffin_lim_reference_momentum"]
        assert fast["settings"]["momentum"] == block["griffin_lim_momentum"] == \
            DataConfig().griffin_lim_momentum
        assert min(fast["librosa_s_per_batch"]) > 0 and min(fast["audiogan_s_per_batch"]) > 0


def test_spec_generator_flop_count_matches_hand_count():
    from audiogan.bench.sample import spec_generator_flops

    # d=64: dense 2*100*16384, then 2*25*a*b*H*W per transposed convolution.
    hand = 2 * 100 * 16384 + 2 * 25 * (1024 * 512 * 16 + 512 * 256 * 64 + 256 * 128 * 256
                                       + 128 * 64 * 1024 + 64 * 1 * 4096)
    assert spec_generator_flops(64) == hand == 1_694_105_600
