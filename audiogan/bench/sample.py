"""`audiogan bench sample`: sampling throughput against this CPU's own matmul rate.

SpectoGAN (d = 64, batch 64): the generator's achieved FLOP/s (dense + transposed
convolutions counted analytically) as a fraction of dense fp32 matmul FLOP/s measured by
torch in the same run, interleaved with the generator timings so both see the same machine
load (and once more in CPU time on one thread, which a loaded machine disturbs less);
then end to end with Griffin-Lim (16 iterations at the default `data.griffin_lim_momentum`,
`audiogan.data.spectro.griffin_lim`, denormalisation included, no file writes). The
generator runs in channels_last memory format, as `audiogan sample` runs it. PianoGAN: phrases (256-note windows) per second
from the generator to MIDI, and seconds of audio per wall second for each available
rendering backend.

Griffin-Lim alone is also timed against `librosa.griffinlim` on the same clips, same
iterations, with the spectral convergence each reaches, twice: the plain algorithm
(momentum 0, `griffin_lim_reference`) and the fast one at the default momentum
(`griffin_lim_reference_momentum`). librosa is the reference because it is the Griffin-Lim
most audio code reaches for and was written independently of ours (numpy FFTs, its own
STFT/ISTFT): a yardstick for both the speed of our batched torch version and the quality of
what it returns. Its random initial phase is set to the zero phase ours starts from, its
momentum to ours (`LIBROSA_SETTINGS`, recorded in the JSON), so both do the same work.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable

import numpy as np
import torch

from audiogan.bench import write_result
from audiogan.builders import build_generator
from audiogan.config import DataConfig, resolve
from audiogan.data.audio import SAMPLE_RATE
from audiogan.data.spectro import CLIP_SAMPLES, HOP_LENGTH, LOG_EPS, N_FFT
from audiogan.models import example_shape_for

# Recorded in the JSON: the generator reaches 70% of this CPU's matmul FLOP/s, and Griffin-Lim
# adds at most 40% to the generator's time.
TARGETS = {"generator_fraction_of_matmul": ">= 0.70", "end_to_end_over_generator": "<= 1.4"}
# librosa.griffinlim as the reference: our STFT (no centring, periodic Hann), from zero
# phase as ours (librosa's default init is "random"); momentum 0 here (librosa's default is
# 0.99), replaced by ours in the momentum comparison.
# length None: librosa re-analyses its whole overlap-add output (16512 samples for 128
# frames, which gives 128 frames back); the result is cut to 16384 samples at the end.
LIBROSA_SETTINGS = {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "window": "hann",
                    "center": False, "momentum": 0.0, "init": None, "length": None}


def spec_generator_flops(d: int, latent_dim: int = 100) -> int:
    """FLOPs (2 per multiply-add) of one SpectoGAN generator forward, per example."""
    flops = 2 * latent_dim * 16 * d * 4 * 4
    widths = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
    side = 4
    for a, b in zip(widths[:-1], widths[1:]):
        flops += 2 * a * b * 5 * 5 * side * side  # each input pixel scatters a 5x5xb kernel
        side *= 2
    return flops


def _seconds(fn: Callable[[], Any], repeats: int, clock: Callable[[], float]) -> list[float]:
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return times


def matmul_flops_per_s(n: int, repeats: int = 3,
                       clock: Callable[[], float] = time.perf_counter) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    return 2.0 * n ** 3 / min(_seconds(lambda: torch.mm(a, b), repeats, clock))


def librosa_griffin_lim(logmag: torch.Tensor, n_iter: int, momentum: float = 0.0
                        ) -> np.ndarray:
    """`librosa.griffinlim` on what `spectro.griffin_lim` inverts: [N, frames, 128] log
    magnitudes -> [N, 16384] audio (the dropped top bin zero, as ours)."""
    import librosa

    mag = np.maximum(np.exp(logmag.numpy()) - LOG_EPS, 0.0)
    mag = np.concatenate([mag, np.zeros(mag.shape[:-1] + (1,), mag.dtype)], axis=-1)
    audio = librosa.griffinlim(np.ascontiguousarray(mag.swapaxes(-1, -2)), n_iter=n_iter,
                               **{**LIBROSA_SETTINGS, "momentum": momentum})
    return audio[..., :CLIP_SAMPLES]


def spectral_convergence(audio: np.ndarray, logmag: torch.Tensor) -> float:
    """|| |STFT(audio)| - target || / || target ||, over the batch (0 = consistent)."""
    from audiogan.data.spectro import log_magnitude

    target = np.exp(logmag.numpy().astype(np.float64))
    got = np.exp(log_magnitude(np.asarray(audio, np.float64)))
    return float(np.linalg.norm(got - target) / np.linalg.norm(target))


def _gl_reference(logmag: torch.Tensor, gl_iters: int, momentum: float, ours: np.ndarray,
                  reference: np.ndarray, ours_s: list[float], librosa_s: list[float]
                  ) -> dict[str, Any]:
    import librosa

    return {
        "implementation": "librosa.griffinlim", "librosa_version": librosa.__version__,
        "settings": {"n_iter": gl_iters, **LIBROSA_SETTINGS, "momentum": momentum},
        "clips": len(logmag),
        "audiogan_s_per_batch": [round(s, 6) for s in ours_s],
        "librosa_s_per_batch": [round(s, 6) for s in librosa_s],
        "librosa_time_over_audiogan": round(min(librosa_s) / min(ours_s), 3),
        "spectral_convergence": {"audiogan": round(spectral_convergence(ours, logmag), 4),
                                 "librosa": round(spectral_convergence(reference, logmag), 4)},
    }


def bench_spectogan(d: int, batch: int, rounds: int, gl_iters: int, threads: int | None = None,
                    clock: Callable[[], float] = time.perf_counter,
                    momentum: float = DataConfig().griffin_lim_momentum) -> dict[str, Any]:
    """Generator FLOP/s vs matmul FLOP/s, and end to end / generator, best of `rounds`.

    `clock=time.perf_counter` with torch's default threads is the plain wall-clock figure;
    `clock=time.process_time` with one thread counts only the CPU time this process got,
    which stays meaningful when other processes load the machine (no thread spin-waits).
    """
    from audiogan.data.scaling import denormalise_spec
    from audiogan.data.spectro import griffin_lim

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    # The preset's compute.channels_last (on for SpectoGAN): oneDNN's fastest transposed
    # convolutions here (~0.76 of the matmul rate against ~0.68 in NCHW, same outputs).
    cfg = resolve("spectogan", {"model.d": d})
    torch.manual_seed(0)
    gen = build_generator(cfg, example_shape_for("spectogan")).eval()
    z = torch.rand(batch, cfg.model.latent_dim) * 2 - 1
    mean, std = np.full(128, -4.0), np.full(128, 2.0)  # stand-in normalisation statistics

    @torch.inference_mode()
    def generate() -> torch.Tensor:
        return gen(z)

    @torch.inference_mode()
    def end_to_end() -> torch.Tensor:
        x = gen(z)
        logmag = torch.from_numpy(denormalise_spec(x[:, 0].numpy(), mean, std, 3.0))
        return griffin_lim(logmag, n_iter=gl_iters, momentum=momentum)

    momenta = (0.0, momentum)
    try:
        generate(), end_to_end()  # warm-up (allocator, oneDNN primitive caches)
        # The same clips for both Griffin-Lims, from this generator.
        logmag = torch.from_numpy(denormalise_spec(generate()[:, 0].numpy(), mean, std, 3.0))
        ours = [griffin_lim(logmag, n_iter=gl_iters, momentum=m).numpy() for m in momenta]
        # warm-up too (imports librosa)
        reference = [librosa_griffin_lim(logmag, gl_iters, m) for m in momenta]
        mm_n = 2048 if d >= 32 else 512
        mm, gen_s, e2e_s = [], [], []
        ours_s: list[list[float]] = [[], []]
        librosa_s: list[list[float]] = [[], []]
        for _ in range(rounds):  # interleaved: each round sees the same background load
            mm.append(matmul_flops_per_s(mm_n, clock=clock))
            gen_s.append(min(_seconds(generate, 2, clock)))
            e2e_s.append(min(_seconds(end_to_end, 2, clock)))
            for k, m in enumerate(momenta):
                ours_s[k].append(min(_seconds(
                    lambda: griffin_lim(logmag, n_iter=gl_iters, momentum=m), 2, clock)))
                librosa_s[k].append(min(_seconds(
                    lambda: librosa_griffin_lim(logmag, gl_iters, m), 2, clock)))
    finally:
        torch.set_num_threads(previous_threads)
    gl_reference, gl_reference_momentum = (
        _gl_reference(logmag, gl_iters, m, ours[k], reference[k], ours_s[k], librosa_s[k])
        for k, m in enumerate(momenta))
    flops = spec_generator_flops(d, cfg.model.latent_dim) * batch
    fraction = flops / min(gen_s) / max(mm)
    return {
        "clock": clock.__name__, "threads": threads or previous_threads,
        "d": d, "batch": batch, "griffin_lim_iters": gl_iters,
        "griffin_lim_momentum": momentum, "rounds": rounds,
        "generator_gflop_per_batch": flops / 1e9,
        "matmul_gflop_s": [round(m / 1e9, 1) for m in mm],
        "generator_s_per_batch": [round(s, 4) for s in gen_s],
        "end_to_end_s_per_batch": [round(s, 4) for s in e2e_s],
        "generator_gflop_s_best": round(flops / min(gen_s) / 1e9, 1),
        "matmul_gflop_s_best": round(max(mm) / 1e9, 1),
        "generator_fraction_of_matmul": round(fraction, 3),
        "clips_per_s_generator": round(batch / min(gen_s), 1),
        "clips_per_s_end_to_end": round(batch / min(e2e_s), 1),
        "end_to_end_over_generator": round(min(e2e_s) / min(gen_s), 3),
        "targets": TARGETS,
        "griffin_lim_reference": gl_reference,
        "griffin_lim_reference_momentum": gl_reference_momentum,
    }


def bench_pianogan(d: int, batch: int, max_render: int) -> dict[str, Any]:
    from audiogan.data import scaling
    from audiogan.data.notes import notes_to_midi
    from audiogan.render import available_backends, render_midi

    cfg = resolve("pianogan", {"model.d": d})
    torch.manual_seed(0)
    gen = build_generator(cfg, example_shape_for("pianogan")).eval()
    z = torch.rand(batch, cfg.model.latent_dim) * 2 - 1
    constants = scaling.note_constants(cfg.data)

    def to_midi() -> list:
        with torch.inference_mode():
            x = gen(z).numpy()
        raw = scaling.unscale_notes(np.swapaxes(x, -1, -2), constants)
        return [notes_to_midi(n) for n in raw]

    to_midi()
    t = time.perf_counter()
    pms = to_midi()
    midi_s = time.perf_counter() - t
    backends = {}
    for backend in available_backends():
        render_midi(pms[0], SAMPLE_RATE, backend)  # warm-up (SoundFont load)
        t = time.perf_counter()
        audio_s = 0.0
        for pm in pms[:max_render]:
            audio, _ = render_midi(pm, SAMPLE_RATE, backend)
            audio_s += len(audio) / SAMPLE_RATE
        wall = time.perf_counter() - t
        n = min(max_render, len(pms))
        backends[backend] = {"phrases": n, "audio_s": round(audio_s, 1), "wall_s": round(wall, 3),
                             "audio_s_per_wall_s": round(audio_s / wall, 1),
                             "phrases_per_s_rendered": round(n / wall, 2)}
    return {"d": d, "batch": batch, "phrases_per_s_to_midi": round(batch / midi_s, 1),
            "mean_phrase_audio_s": round(float(np.mean([p.get_end_time() for p in pms])), 2),
            "backends": backends, "best_backend": available_backends()[0]}


def run(args: argparse.Namespace) -> str:
    quick = bool(getattr(args, "quick", False))
    load_before = os.getloadavg()
    sizes = {"d": 4 if quick else 64, "batch": 4 if quick else 64,
             "rounds": 1 if quick else 3, "gl_iters": 2 if quick else 16}
    spec = {"wall_clock": bench_spectogan(**sizes),
            "cpu_time_1_thread": bench_spectogan(**sizes, threads=1, clock=time.process_time)}
    piano = bench_pianogan(d=4 if quick else 64, batch=4 if quick else 64,
                           max_render=2 if quick else 16)
    # Other processes share this machine: the 1-minute load average says how much.
    load = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
    return write_result(args.out, "sample", {"quick": quick, "load_average_1min": load,
                                             "spectogan": spec, "pianogan": piano})
