"""`audiogan sample CHECKPOINT --out DIR [--seeds 0-15] [--n N] [--labels L]
[--interpolate A B --steps K] [--latents Z.npy ...] [--interpolate-latents A.npy B.npy
--steps K]`.

PianoGAN: per sample a `.mid` (inverse scaling, pitch rounding, the same-pitch overlap rule
of `notes_to_midi`), a `.wav` from the best rendering backend and a piano-roll `.png`.
SpectoGAN: per sample a `.wav` (batched Griffin-Lim with the run's iterations and momentum
for log magnitudes; the exact inverse STFT for complex spectrograms), plus one spectrogram
grid PNG. `samples.json` records checkpoint, seeds, config hash and rendering backend.

`--latents` samples the z stored in `.npy` files (`audiogan invert` writes one per real
recording: the generator's version of that recording); `--interpolate-latents A B
--steps K` walks the straight line between two such z, morphing one recording into the
other. Conditional checkpoints need `--labels` with them (one class for every z, or one
per z; `inversion.json` records the class each clip was inverted with).

Each sample's z comes from its own seed (`latents_for_seeds`), so seed 3 is the same
sample in any batch and for any `--n`. `--interpolate A B --steps K` walks the straight
latent line from seed A's z to seed B's z in K points, both ends included.

Conditional checkpoints: a sample is addressed by (seed, label). `--labels` (digits,
composer names or class indices: `LabelMap.parse`) samples every seed for every label,
named `seed_SSSS_LABEL`; the spectrogram grid then has one row per label. Without
`--labels` each seed gets the label the evaluator gives it (drawn by seed from the
training frequencies). `--interpolate` walks within one label (`--labels` naming one; by
default seed A's). `--labels` on an unconditional checkpoint is a one-line error.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import time
import unicodedata
from typing import Any

import numpy as np
import torch

from audiogan import plots, storage
from audiogan.config import FIXED_SPECTROGRAM
from audiogan.data import shards
from audiogan.data.audio import SAMPLE_RATE
from audiogan.errors import UserError
from audiogan.latent import interpolate, labels_for_seeds, latents_for_seeds, load_latents

log = logging.getLogger(__name__)

BATCH = 64
MAX_GRID = 64


def parse_seeds(text: str | None, n: int | None) -> list[int]:
    """"0-15" / "3,7,9" / "0-3,10" -> seeds; `--n` alone means 0..n-1, with seeds the first n."""
    if n is not None and n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    if text is None:
        return list(range(n if n is not None else 16))
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise UserError(f"--seeds '{text}': expected e.g. 0-15 or 3,7,9 "
                            "(non-negative integers, ranges low-high)")
        lo = int(m.group(1))
        seeds.extend(range(lo, int(m.group(2) or lo) + 1))
    return seeds[:n] if n is not None else seeds


@torch.no_grad()
def generate(generator: torch.nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None,
             batch_size: int = BATCH) -> np.ndarray:
    """Network-layout output for latents z (and class indices, conditional), in batches
    (eval mode: no phase shuffle).

    The generator's memory format is its config's (`compute.channels_last`, set by the
    builder that made it); outputs are returned contiguous.
    """
    generator.eval()
    out = []
    for i in range(0, len(z), batch_size):
        batch = z[i:i + batch_size]
        y = None if labels is None else labels[i:i + batch_size]
        out.append((generator(batch) if y is None else generator(batch, y)).contiguous())
    return torch.cat(out).numpy()


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_samples(x: np.ndarray, names: list[str], meta: dict[str, Any], out: str, *,
                  griffin_lim_iters: int, griffin_lim_momentum: float = 0.0,
                  grid_rows: int = 0, row_names: list[str] | None = None,
                  clip_s: float | None = None) -> tuple[list[str], str]:
    """MIDI/wav/PNG of network-layout samples x (wavs cut to `clip_s` s); (names, backend)."""
    files: list[str] = []
    raw = shards.from_network(x, meta)
    sample_rate = SAMPLE_RATE
    keep = None if clip_s is None else int(clip_s * sample_rate)
    if meta["kind"] == "notes":
        from audiogan.data.notes import notes_to_midi
        from audiogan.render import best_backend, render_midi

        backend = best_backend()
        for name, notes in zip(names, raw):
            pm = notes_to_midi(notes)
            buf = io.BytesIO()
            pm.write(buf)
            audio, backend = render_midi(pm, sample_rate, backend)
            audio = audio[:keep]
            for suffix, data in ((".mid", buf.getvalue()), (".wav", wav_bytes(audio, sample_rate)),
                                 (".png", plots.piano_roll_png(pm, name))):
                storage.write_bytes_atomic(storage.join(out, name + suffix), data)
                files.append(name + suffix)
        return files, backend
    audio, backend, logmag = spectrogram_audio(raw, meta, griffin_lim_iters=griffin_lim_iters,
                                               griffin_lim_momentum=griffin_lim_momentum)
    for name, clip in zip(names, audio):
        storage.write_bytes_atomic(storage.join(out, name + ".wav"),
                                   wav_bytes(clip[:keep], sample_rate))
        files.append(name + ".wav")
    storage.write_bytes_atomic(storage.join(out, "spectrograms.png"),
                               plots.spectrogram_grid_png(
                                   logmag, names, sample_rate=sample_rate,
                                   hop_length=FIXED_SPECTROGRAM["hop_length"],
                                   n_fft=FIXED_SPECTROGRAM["n_fft"], n_rows=grid_rows,
                                   max_cells=MAX_GRID, row_names=row_names))
    files.append("spectrograms.png")
    return files, backend


def spectrogram_audio(raw: np.ndarray, meta: dict[str, Any], *, griffin_lim_iters: int,
                      griffin_lim_momentum: float = 0.0
                      ) -> tuple[np.ndarray, str, np.ndarray]:
    """Raw spectrograms (`shards.from_network`) -> (peak-normalised audio, how it was
    made, log magnitudes to draw)."""
    from audiogan.data import complex_spec
    from audiogan.render import complex_to_audio, spectrograms_to_audio

    if shards.is_complex(meta):
        return (complex_to_audio(raw), "inverse STFT (exact, complex spectrogram)",
                complex_spec.log_magnitude(np.asarray(raw, np.float64)))
    audio = spectrograms_to_audio(raw, n_iter=griffin_lim_iters, momentum=griffin_lim_momentum)
    return (audio, f"griffin-lim ({griffin_lim_iters} iterations, momentum "
                   f"{griffin_lim_momentum:g})", raw)


def slug(name: str) -> str:
    """A class name as a file-name part ('Frédéric Chopin' -> 'Frederic-Chopin')."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-") or "x"


def _from_latent_files(args: argparse.Namespace, latent_dim: int, label_map: Any,
                       classes: list[int] | None, record: dict[str, Any]
                       ) -> tuple[torch.Tensor, list[str], torch.Tensor | None, list[int]]:
    """(z, names, labels, seeds=[]) for --latents / --interpolate-latents."""
    if args.latents:
        z, names = load_latents(args.latents, latent_dim)
        names = [f"latent_{n}" for n in names]
        record["latents"] = list(args.latents)
    else:
        a, b = args.interpolate_latents
        if args.steps < 2:
            raise UserError("--interpolate-latents needs --steps >= 2")
        ends, stems = load_latents([a, b], latent_dim)
        if len(ends) != 2:
            raise UserError("--interpolate-latents takes two files of one z each")
        z = interpolate(ends[0], ends[1], args.steps)
        names = [f"interp_{stems[0]}_{stems[1]}_{i:02d}" for i in range(args.steps)]
        record["interpolate_latents"] = {"a": a, "b": b, "steps": args.steps}
    if label_map is None:
        return z, names, None, []
    if not classes or len(classes) not in (1, len(z)):
        raise UserError(f"a conditional model needs --labels with --latents: one class, or one "
                        f"per z ({len(z)}); inversion.json records each clip's class")
    y = torch.tensor(classes * len(z) if len(classes) == 1 else classes, dtype=torch.long)
    return z, [f"{n}_{slug(label_map.names[int(c)])}" for n, c in zip(names, y)], y, []


def cli_main(args: argparse.Namespace) -> int:
    from audiogan.train.checkpoint import label_map_of, latest_in, load_generator

    start = time.perf_counter()
    args.checkpoint = latest_in(args.checkpoint)  # a run directory: its latest checkpoint
    generator, cfg, meta = load_generator(args.checkpoint)
    latent_dim = cfg.model.latent_dim
    label_map = label_map_of(meta)
    asked = getattr(args, "labels", None)
    if asked is not None and label_map is None:
        raise UserError("--labels: this checkpoint's model is unconditional (no classes)")
    classes = label_map.parse(asked) if asked is not None else None
    record: dict[str, Any] = {}
    grid_rows = 0
    y: torch.Tensor | None = None
    args.latents = getattr(args, "latents", None)
    args.interpolate_latents = getattr(args, "interpolate_latents", None)
    from_files = bool(args.latents or args.interpolate_latents)
    modes = [bool(args.interpolate), bool(args.latents), bool(args.interpolate_latents)]
    if sum(modes) > 1 or (from_files and (args.seeds is not None or args.n is not None)):
        raise UserError("choose one of --seeds/--n, --interpolate, --latents, "
                        "--interpolate-latents")
    if from_files:
        z, names, y, seeds = _from_latent_files(args, latent_dim, label_map, classes, record)
    elif args.interpolate:
        a, b = args.interpolate
        if a < 0 or b < 0 or args.steps < 2:
            raise UserError("--interpolate needs seeds >= 0 and --steps >= 2")
        if classes is not None and len(classes) != 1:
            raise UserError("--interpolate walks within one label: give --labels one class")
        ends = latents_for_seeds([a, b], latent_dim)
        z = interpolate(ends[0], ends[1], args.steps)
        names = [f"interp_{a}_{b}_{i:02d}" for i in range(args.steps)]
        record["interpolate"] = {"a": a, "b": b, "steps": args.steps}
        seeds: list[int] = []
        if label_map is not None:
            label = classes[0] if classes else int(labels_for_seeds([a], label_map.probs)[0])
            y = torch.full((args.steps,), label, dtype=torch.long)
            names = [f"{n}_{slug(label_map.names[label])}" for n in names]
            record["interpolate"]["label"] = label_map.names[label]
    else:
        seeds = parse_seeds(args.seeds, args.n)
        if label_map is None:
            z, y = latents_for_seeds(seeds, latent_dim), None
            names = [f"seed_{s:04d}" for s in seeds]
        else:
            if classes is None:   # each seed's evaluation label
                pairs = list(zip(seeds, labels_for_seeds(seeds, label_map.probs).tolist()))
            else:                 # every seed for every label, one grid row per label
                pairs = [(s, c) for c in classes for s in seeds]
                grid_rows = len(classes)
            z = latents_for_seeds([s for s, _ in pairs], latent_dim)
            y = torch.tensor([c for _, c in pairs], dtype=torch.long)
            names = [f"seed_{s:04d}_{slug(label_map.names[c])}" for s, c in pairs]
    if label_map is not None:
        record["labels"] = [label_map.names[int(c)] for c in y]
    x = generate(generator, z, y)
    files, backend = write_samples(x, names, meta, args.out,
                                   griffin_lim_iters=cfg.data.griffin_lim_iters,
                                   griffin_lim_momentum=cfg.data.griffin_lim_momentum,
                                   grid_rows=grid_rows,
                                   row_names=[label_map.names[c] for c in classes]
                                   if grid_rows else None)
    record.update({
        "checkpoint": os.path.abspath(args.checkpoint) if not storage.is_uri(args.checkpoint)
        else args.checkpoint,
        "family": cfg.model.family, "kind": meta["kind"], "step": meta.get("step"),
        "seeds": seeds, "names": names, "config_hash": cfg.hash(),
        "data_manifest_hash": meta.get("data_manifest_hash"), "rendering_backend": backend,
        "sample_rate": SAMPLE_RATE, "files": files,
        "seconds": round(time.perf_counter() - start, 2),
    })
    storage.write_json_atomic(storage.join(args.out, "samples.json"), record)
    if backend == "sine":
        log.warning("no SoundFont renderer (fluidsynth, tinysoundfont): .wav files use "
                    "pretty_midi's sine synthesis and do not sound like a piano")
    print(f"wrote {len(names)} samples ({backend}) to {args.out} in {record['seconds']} s")
    return 0
