"""`audiogan sample CHECKPOINT --out DIR [--seeds 0-15] [--n N] [--interpolate A B --steps K]`.

PianoGAN: per sample a `.mid` (inverse scaling, pitch rounding, the same-pitch overlap rule
of `notes_to_midi`), a `.wav` from the best rendering backend and a piano-roll `.png`.
SpectoGAN: per sample a `.wav` by batched Griffin-Lim, plus one spectrogram grid PNG.
`samples.json` records checkpoint, seeds, config hash and rendering backend.

Each sample's z comes from its own seed (`latents_for_seeds`), so seed 3 is the same
sample in any batch and for any `--n`. `--interpolate A B --steps K` walks the straight
latent line from seed A's z to seed B's z in K points, both ends included.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import time
from typing import Any

import numpy as np
import torch

from audiogan import storage
from audiogan.data import shards
from audiogan.data.audio import SAMPLE_RATE
from audiogan.errors import UserError
from audiogan.latent import interpolate, latents_for_seeds

log = logging.getLogger(__name__)

BATCH = 64
PIANO_ROLL_FPS = 50
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
def generate(generator: torch.nn.Module, z: torch.Tensor, batch_size: int = BATCH) -> np.ndarray:
    """Network-layout output for latents z, in batches (eval mode: no phase shuffle).

    2-D (SpectoGAN) generators run in channels_last memory format: oneDNN's transposed
    convolutions are faster so on CPU, and the output is identical.
    """
    generator.eval()
    if any(p.dim() == 4 for p in generator.parameters()):
        generator = generator.to(memory_format=torch.channels_last)
    return torch.cat([generator(z[i:i + batch_size]).contiguous()
                      for i in range(0, len(z), batch_size)]).numpy()


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio, np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _piano_roll_png(pm: Any) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = pm.get_piano_roll(fs=PIANO_ROLL_FPS)[21:109]  # piano range, rows = pitches
    buf = io.BytesIO()
    plt.imsave(buf, (roll > 0).astype(np.float32)[::-1] if roll.size else np.zeros((88, 1)),
               cmap="gray_r", format="png")
    return buf.getvalue()


def _spectrogram_grid_png(logmag: np.ndarray, names: list[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(len(logmag), MAX_GRID)
    cols = int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:  # frames on x, frequency bins upward
            ax.imshow(logmag[i].T, origin="lower", aspect="auto", cmap="magma")
            ax.set_title(names[i], fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def write_samples(x: np.ndarray, names: list[str], meta: dict[str, Any], out: str, *,
                  griffin_lim_iters: int) -> tuple[list[str], str]:
    """Write MIDI/wav/PNG files for network-layout samples x; (file names, backend)."""
    files: list[str] = []
    raw = shards.from_network(x, meta)
    sample_rate = SAMPLE_RATE
    if meta["kind"] == "notes":
        from audiogan.data.notes import notes_to_midi
        from audiogan.render import best_backend, render_midi

        backend = best_backend()
        for name, notes in zip(names, raw):
            pm = notes_to_midi(notes)
            buf = io.BytesIO()
            pm.write(buf)
            audio, backend = render_midi(pm, sample_rate, backend)
            for suffix, data in ((".mid", buf.getvalue()), (".wav", _wav_bytes(audio, sample_rate)),
                                 (".png", _piano_roll_png(pm))):
                storage.write_bytes_atomic(storage.join(out, name + suffix), data)
                files.append(name + suffix)
        return files, backend
    from audiogan.render import spectrograms_to_audio

    audio = spectrograms_to_audio(raw, n_iter=griffin_lim_iters)
    for name, clip in zip(names, audio):
        storage.write_bytes_atomic(storage.join(out, name + ".wav"), _wav_bytes(clip, sample_rate))
        files.append(name + ".wav")
    storage.write_bytes_atomic(storage.join(out, "spectrograms.png"),
                               _spectrogram_grid_png(raw, names))
    files.append("spectrograms.png")
    return files, f"griffin-lim ({griffin_lim_iters} iterations)"


def cli_main(args: argparse.Namespace) -> int:
    from audiogan.train.checkpoint import load_generator

    start = time.perf_counter()
    generator, cfg, meta = load_generator(args.checkpoint)
    latent_dim = cfg.model.latent_dim
    record: dict[str, Any] = {}
    if args.interpolate:
        a, b = args.interpolate
        if a < 0 or b < 0 or args.steps < 2:
            raise UserError("--interpolate needs seeds >= 0 and --steps >= 2")
        ends = latents_for_seeds([a, b], latent_dim)
        z = interpolate(ends[0], ends[1], args.steps)
        names = [f"interp_{a}_{b}_{i:02d}" for i in range(args.steps)]
        record["interpolate"] = {"a": a, "b": b, "steps": args.steps}
        seeds: list[int] = []
    else:
        seeds = parse_seeds(args.seeds, args.n)
        z = latents_for_seeds(seeds, latent_dim)
        names = [f"seed_{s:04d}" for s in seeds]
    x = generate(generator, z)
    files, backend = write_samples(x, names, meta, args.out,
                                   griffin_lim_iters=cfg.data.griffin_lim_iters)
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
