"""Sound from generated examples: piano MIDI rendering and spectrogram inversion.

Piano, best available first (DESIGN.md "Rendering and inversion"):
  1. "fluidsynth"    pyfluidsynth + system libfluidsynth, pretty_midi's bundled TimGM6mb.sf2
  2. "tinysoundfont" PyPI tinysoundfont (pip-only) with the same SoundFont
  3. "sine"          pretty_midi's sine synthesis: needs nothing, sounds nothing like a piano
The backend name travels with the audio so `samples.json` and reports label it.
Spectrograms: `audiogan.data.spectro.griffin_lim` (the one batched Griffin-Lim) for log
magnitudes, the exact inverse STFT (`audiogan.data.complex_spec.synthesise`) for complex
spectrograms, then peak normalisation.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os

import numpy as np
import pretty_midi
import torch

from audiogan.data import complex_spec, spectro

log = logging.getLogger(__name__)

BACKENDS = ("fluidsynth", "tinysoundfont", "sine")
RELEASE_TAIL_S = 1.0  # let the last notes ring out
PEAK = 0.9


def soundfont_path() -> str:
    """pretty_midi's bundled General MIDI SoundFont (TimGM6mb.sf2, ~6 MB)."""
    return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def available_backends() -> tuple[str, ...]:
    found = []
    if _has("fluidsynth") and os.path.exists(soundfont_path()):
        try:
            import fluidsynth  # noqa: F401  (loads libfluidsynth; fails without it)

            found.append("fluidsynth")
        except (ImportError, OSError) as exc:
            log.debug("pyfluidsynth present but unusable: %s", exc)
    if _has("tinysoundfont") and os.path.exists(soundfont_path()):
        found.append("tinysoundfont")
    found.append("sine")
    return tuple(found)


def best_backend() -> str:
    return available_backends()[0]


@functools.lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    with open(soundfont_path(), "rb") as f:
        return f.read()


def _tinysoundfont(pm: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray:
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(_soundfont_bytes())
    events = []  # (sample, order, channel, kind, pitch, velocity); note-offs before note-ons
    for chan, inst in enumerate(i for i in pm.instruments if not i.is_drum):
        chan = min(chan, 15)
        synth.program_select(chan, sfid, 0, inst.program)
        for n in inst.notes:
            events.append((int(round(n.start * sample_rate)), 1, chan, "on", n.pitch, n.velocity))
            events.append((int(round(n.end * sample_rate)), 0, chan, "off", n.pitch, 0))
    events.sort()
    end = (events[-1][0] if events else 0) + int(RELEASE_TAIL_S * sample_rate)
    out = np.zeros((end, 2), np.float32)
    pos = 0
    for sample, _, chan, kind, pitch, velocity in events:
        if sample > pos:
            out[pos:sample] = np.frombuffer(synth.generate_simple(sample - pos),
                                            np.float32).reshape(-1, 2)
            pos = sample
        if kind == "on":
            synth.noteon(chan, pitch, velocity)
        else:
            synth.noteoff(chan, pitch)
    if end > pos:
        out[pos:end] = np.frombuffer(synth.generate_simple(end - pos), np.float32).reshape(-1, 2)
    return out.mean(1)


def render_midi(pm: pretty_midi.PrettyMIDI, sample_rate: int = 16000,
                backend: str | None = None) -> tuple[np.ndarray, str]:
    """(mono float32 audio peak-normalised to 0.9, backend name) for a PrettyMIDI."""
    backend = backend or best_backend()
    if backend not in available_backends():
        raise ValueError(f"rendering backend '{backend}' is not available here "
                         f"(available: {', '.join(available_backends())})")
    if backend == "fluidsynth":
        audio = pm.fluidsynth(fs=sample_rate, sf2_path=soundfont_path())
    elif backend == "tinysoundfont":
        audio = _tinysoundfont(pm, sample_rate)
    else:
        audio = pm.synthesize(fs=sample_rate)
    audio = np.asarray(audio, np.float32)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0:
        audio = audio * (PEAK / peak)
    return audio, backend


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """[N, samples] -> each clip scaled to peak PEAK (silent clips unchanged), float32."""
    audio = np.asarray(audio, np.float32)
    peak = np.abs(audio).max(axis=1, keepdims=True) if audio.size else np.zeros((0, 1))
    return (audio * np.where(peak > 0, PEAK / np.maximum(peak, 1e-12), 1.0)).astype(np.float32)


def spectrograms_to_audio(logmag: np.ndarray | torch.Tensor, n_iter: int = 16,
                          batch_size: int = 64, momentum: float = 0.0) -> np.ndarray:
    """[N, frames, bins] raw log magnitudes -> [N, 16384] float32 audio, peak-normalised."""
    x = torch.as_tensor(np.asarray(logmag), dtype=torch.float32)
    out = [spectro.griffin_lim(x[i:i + batch_size], n_iter=n_iter, momentum=momentum)
           for i in range(0, len(x), batch_size)]
    return peak_normalise(torch.cat(out).numpy() if out else np.zeros((0, 16384), np.float32))


def complex_to_audio(raw: np.ndarray) -> np.ndarray:
    """[N, 2, frames, bins] raw STFT parts -> [N, 16384] float32 audio (exact inverse),
    peak-normalised."""
    return peak_normalise(np.asarray(complex_spec.synthesise(torch.as_tensor(raw))))
