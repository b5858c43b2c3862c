"""Accuracy of the audio representations (issue 18): what the complex path and Griffin-Lim
give back. Not timing benchmarks (timings here are incidental, taken as the machine was).

    python -m audiogan.bench.representation snr --source WAV_DIR --complex DIR --logmag DIR
        --out results/complex/snr_sc09mini.json
    python -m audiogan.bench.representation classify --logmag DIR --complex DIR
        --classifier DIR --out results/complex/classifier_fsdd.json

`snr`: every clip of the two preprocessed datasets of WAV_DIR against the clip as
preprocessing reads it (`audio.clip_from_wav`, float64): the whole complex path (network
values as training sees them: compression, normalisation, clipping, float32; then the exact
inverse), its parts in float64 (the dropped Nyquist bin; the uncentred framing's first
half-frame, with and without the envelope floor), and the log-magnitude path with
Griffin-Lim (plain and momentum, 16 and 32 iterations; librosa's) for comparison.
`classify`: the digit classifier's test accuracy after each round trip, audio ->
representation -> audio -> log magnitudes -> classifier.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

import numpy as np
import torch

from audiogan import storage
from audiogan.data import audio as audio_io
from audiogan.data import complex_spec, shards, spectro
from audiogan.metrics import roundtrip

HALF = spectro.HOP_LENGTH
GRIFFIN_LIM = [(16, 0.0), (32, 0.0), (16, 0.99), (32, 0.99)]
LIBROSA = {"n_iter": 32, "momentum": 0.99, "init": "random", "random_state": 0}


def snr_db(ref: np.ndarray, got: np.ndarray, start: int = 0) -> float:
    """10 log10(signal energy / error energy) over all clips, samples from `start`."""
    ref, got = np.asarray(ref, np.float64)[..., start:], np.asarray(got, np.float64)[..., start:]
    return float(10 * np.log10((ref ** 2).sum() / max(((ref - got) ** 2).sum(), 1e-300)))


def per_clip_snr(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    values = [snr_db(r, g) for r, g in zip(ref, got)]
    return {"min": round(min(values), 2), "median": round(float(np.median(values)), 2)}


def spectral_convergence(ref: np.ndarray, got: np.ndarray) -> float:
    """|| |STFT(got)| - |STFT(ref)| || / || |STFT(ref)| || (0: the same magnitudes)."""
    a = np.abs(spectro.stft(np.asarray(ref, np.float64))[..., :spectro.N_BINS])
    b = np.abs(spectro.stft(np.asarray(got, np.float64))[..., :spectro.N_BINS])
    return float(np.linalg.norm(b - a) / np.linalg.norm(a))


def librosa_griffin_lim(raw_logmag: np.ndarray) -> np.ndarray:
    """librosa.griffinlim with its defaults (LIBROSA) on our framing; [N, 16384]."""
    import librosa

    mag = np.maximum(np.exp(np.asarray(raw_logmag, np.float64)) - spectro.LOG_EPS, 0.0)
    mag = np.concatenate([mag, np.zeros(mag.shape[:-1] + (1,))], axis=-1)
    out = librosa.griffinlim(np.ascontiguousarray(mag.swapaxes(-1, -2)), n_fft=spectro.N_FFT,
                             hop_length=spectro.HOP_LENGTH, window="hann", center=False,
                             **LIBROSA)
    return out[..., :spectro.CLIP_SAMPLES]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.process_time()
    return fn(), round(time.process_time() - t, 2)


def _all_splits(data: str, only: str | None = None) -> tuple[dict[str, Any], shards.Examples]:
    m = shards.read_manifest(data)
    parts = [shards.load_split(data, s, manifest=m) for s in shards.SPLITS if only in (None, s)]
    keep = [p for p in parts if len(p.x)]
    return m, shards.Examples(np.concatenate([p.x for p in keep]),
                              [lab for p in keep for lab in p.labels],
                              [k for p in keep for k in p.keys])


def _splits_of(data: str, manifest: dict[str, Any], keys: list[str]) -> list[str]:
    out = {}
    for split in shards.SPLITS:
        for k in shards.load_split(data, split, scaled=False, manifest=manifest).keys:
            out[k] = split
    return [out[k] for k in keys]


def measure_snr(source: str, complex_dir: str, logmag_dir: str, only: str | None = None
                ) -> dict[str, Any]:
    mc, cx = _all_splits(complex_dir, only)
    ml, lm = _all_splits(logmag_dir, only)
    assert cx.keys == lm.keys, "the two datasets must hold the same clips"
    clips = np.stack([audio_io.clip_from_wav(audio_io.read_source(
        os.path.join(source, k.split("#")[0])))[0] for k in cx.keys]).astype(np.float64)
    split = np.asarray(_splits_of(complex_dir, mc, cx.keys))
    spec64 = spectro.stft(clips)                                   # all 129 bins, float64
    parts129 = np.stack([spec64.real, spec64.imag], axis=-3)
    norm = mc["normalisation"]
    c = complex_spec.compress(parts129[..., :spectro.N_BINS].astype(np.float32)
                              .astype(np.float64), norm["compression_scale"])
    unclipped = c / np.asarray(norm["scale"])
    y = np.asarray(complex_spec.synthesise(torch.from_numpy(shards.from_network(cx.x, mc))),
                   np.float64)
    full = {"snr_db": round(snr_db(clips, y), 2),
            "snr_db_from_sample_128": round(snr_db(clips, y, HALF), 2),
            "per_clip": per_clip_snr(clips, y),
            "clipped_fraction": float((np.abs(unclipped) > 1).mean()),
            "clipped_fraction_by_split": {s: float((np.abs(unclipped[split == s]) > 1).mean())
                                          for s in shards.SPLITS if (split == s).any()},
            "spectral_convergence": round(spectral_convergence(clips, y), 5)}
    parts = {
        "129 bins, float64, envelope floor 1e-8 (sample 0 lost only)":
            complex_spec.synthesise(parts129, floor=1e-8),
        f"129 bins, float64, envelope floor {complex_spec.ENVELOPE_FLOOR}":
            complex_spec.synthesise(parts129),
        f"128 bins (Nyquist dropped), float64, floor {complex_spec.ENVELOPE_FLOOR}":
            complex_spec.synthesise(parts129[..., :spectro.N_BINS]),
    }
    # The normalisation's alternatives on the same statistics (all float32, clipped).
    alternatives = {}
    for name, scale in (("3 x RMS (as the log magnitudes' 3 std)", 3 * np.asarray(norm["rms"])),
                        ("peak, no headroom", np.asarray(norm["peak"])),
                        (f"peak + {norm['headroom_db']:g} dB, capped (chosen)",
                         np.asarray(norm["scale"]))):
        x = c / scale
        raw = complex_spec.expand(np.clip(x, -1, 1).astype(np.float32).astype(np.float64) * scale,
                                  norm["compression_scale"])
        alternatives[name] = {"snr_db": round(snr_db(clips, complex_spec.synthesise(raw)), 2),
                              "clipped_fraction": float((np.abs(x) > 1).mean())}
    decomposition = {name: {"snr_db": round(snr_db(clips, v), 2),
                            "snr_db_from_sample_128": round(snr_db(clips, v, HALF), 2)}
                     for name, v in parts.items()}
    energy = {"first_half_frame_share": float((clips[:, :HALF] ** 2).sum() / (clips ** 2).sum()),
              "nyquist_bin_share": float((np.abs(spec64[..., -1]) ** 2).sum()
                                         / (np.abs(spec64) ** 2).sum())}
    comparison = {}
    raw_lm = shards.from_network(lm.x, ml)
    for n_iter, momentum in GRIFFIN_LIM:
        g, secs = _timed(lambda: roundtrip.to_audio(lm.x, ml, n_iter=n_iter,
                                                    momentum=momentum).numpy())
        comparison[f"griffin-lim {n_iter} iterations, momentum {momentum}"] = {
            "snr_db": round(snr_db(clips, g), 2),
            "spectral_convergence": round(spectral_convergence(clips, g), 4),
            "cpu_s": secs}
    g, secs = _timed(lambda: librosa_griffin_lim(raw_lm))
    comparison["librosa.griffinlim " + json.dumps(LIBROSA, sort_keys=True)] = {
        "snr_db": round(snr_db(clips, g), 2),
        "spectral_convergence": round(spectral_convergence(clips, g), 4), "cpu_s": secs}
    return {"clips": len(clips), "source": source, "complex": complex_dir, "logmag": logmag_dir,
            "counts": {s: int((split == s).sum()) for s in shards.SPLITS},
            "normalisation_from": "the train split of the complex dataset",
            "complex_whole_path": full, "complex_decomposition": decomposition,
            "normalisation_alternatives": alternatives,
            "energy": energy, "log_magnitude_griffin_lim": comparison}


def measure_classifier(logmag_dir: str, complex_dir: str, classifiers: list[str],
                       split: str = "test") -> dict[str, Any]:
    """Per round trip: each classifier's accuracy and mean negative log-likelihood of the
    true digit (finer than accuracy when accuracy saturates), and how far the round trip's
    magnitudes are from the clip's (spectral convergence; log-spectral distance in dB)."""
    from audiogan.classifier import load_classifier
    from audiogan.metrics.inception import class_probabilities

    models = {path: load_classifier(path) for path in classifiers}
    ml, mc = shards.read_manifest(logmag_dir), shards.read_manifest(complex_dir)
    lm = shards.load_split(logmag_dir, split, manifest=ml)
    cx = shards.load_split(complex_dir, split, manifest=mc)
    assert lm.keys == cx.keys, "the two datasets must hold the same clips"
    target = np.exp(shards.load_split(logmag_dir, split, scaled=False, manifest=ml).x
                    .astype(np.float64))                          # the clips' magnitudes

    def scores(heard: np.ndarray, audio: np.ndarray | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, (model, info) in models.items():
            y = np.asarray([info["labels"].index(lab) for lab in lm.labels])
            p = class_probabilities(model, heard).numpy().astype(np.float64)
            out[os.path.basename(path.rstrip("/"))] = {
                "accuracy": round(float((p.argmax(1) == y).mean()), 4),
                "nll": round(float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean()),
                             4)}
        if audio is not None:
            got = np.abs(spectro.stft(np.asarray(audio, np.float64))[..., :spectro.N_BINS])
            out["spectral_convergence"] = round(float(np.linalg.norm(got - target)
                                                      / np.linalg.norm(target)), 4)
            out["log_spectral_distance_db"] = round(float(np.sqrt((
                (20 * np.log10((got + 1e-5) / (target + 1e-5))) ** 2).mean(axis=(1, 2))).mean()), 2)
        return out

    rows: dict[str, Any] = {"clean (no round trip)": scores(lm.x, None)}
    audio, secs = _timed(lambda: roundtrip.to_audio(cx.x, mc, n_iter=0).numpy())
    rows["complex (exact inverse STFT)"] = {**scores(roundtrip.from_audio(audio, ml), audio),
                                            "cpu_s": secs}
    for n_iter, momentum in GRIFFIN_LIM:
        audio, secs = _timed(lambda: roundtrip.to_audio(lm.x, ml, n_iter=n_iter,
                                                        momentum=momentum).numpy())
        rows[f"griffin-lim {n_iter} iterations, momentum {momentum}"] = {
            **scores(roundtrip.from_audio(audio, ml), audio), "cpu_s": secs}
    audio, secs = _timed(lambda: librosa_griffin_lim(shards.from_network(lm.x, ml)))
    rows["librosa.griffinlim " + json.dumps(LIBROSA, sort_keys=True)] = {
        **scores(roundtrip.from_audio(torch.from_numpy(audio).float(), ml), audio),
        "cpu_s": secs}
    return {"split": split, "clips": len(lm.keys),
            "classifiers": {os.path.basename(p.rstrip("/")): {
                "path": p, "trained_on": info.get("data"),
                "round_trip_augmented": "accuracy_test_round_trip" in info}
                for p, (_, info) in models.items()},
            "logmag": logmag_dir, "complex": complex_dir, "rows": rows,
            "note": "cpu_s: process CPU time on one thread, 200 clips, machine shared (loaded)"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m audiogan.bench.representation")
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("snr")
    q.add_argument("--split", default=None, help="one split only (default: all)")
    q.add_argument("--source", required=True)
    q.add_argument("--complex", required=True)
    q.add_argument("--logmag", required=True)
    q.add_argument("--out", required=True)
    q = sub.add_parser("classify")
    q.add_argument("--logmag", required=True)
    q.add_argument("--complex", required=True)
    q.add_argument("--classifier", required=True, action="append",
                   help="repeatable: each classifier scores every round trip")
    q.add_argument("--split", default="test")
    q.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    if args.what == "snr":
        result = measure_snr(args.source, args.complex, args.logmag, args.split)
    else:
        result = measure_classifier(args.logmag, args.complex, args.classifier, args.split)
    result.update({"command": "python -m audiogan.bench.representation " + " ".join(
        sys.argv[1:] if argv is None else argv), "seconds": round(time.time() - start, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d")})
    storage.write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
