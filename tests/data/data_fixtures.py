"""Tiny fixture builders for the data tests (MIDI with pretty_midi, tones with numpy)."""

from __future__ import annotations

import os

import numpy as np
import pretty_midi
import soundfile as sf


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, amp: float = 0.5,
         channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, -1) if channels > 1 else x


def write_wav(path, x, rate=16000, subtype="PCM_16") -> str:
    sf.write(str(path), x, rate, subtype=subtype)
    return str(path)


def piano_midi(n_notes: int, seed: int = 0, start: float = 0.0, tracks: int = 1,
               drums: bool = False) -> pretty_midi.PrettyMIDI:
    """Overlap-free random notes (each pitch used once per track, times on a 10 ms grid)."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120)
    for k in range(tracks):
        inst = pretty_midi.Instrument(program=0, is_drum=drums)
        t = start
        for i in range(n_notes):
            pitch = 21 + (i * 7 + k * 3) % 88
            dur = float(rng.integers(5, 60)) / 100
            inst.notes.append(pretty_midi.Note(80, pitch, t, t + dur))
            t += float(rng.integers(0, 30)) / 100
        pm.instruments.append(inst)
    return pm


def write_midi(path, pm) -> str:
    pm.write(str(path))
    return str(path)


def bad_inputs(root, ext: str) -> dict[str, str]:
    """Files every kind must reject, -> {name: expected reason}. No permissions, no FIFOs."""
    os.makedirs(root, exist_ok=True)
    j = lambda n: os.path.join(root, n)  # noqa: E731
    open(j(f"empty{ext}"), "wb").close()
    with open(j(f"garbage{ext}"), "wb") as f:
        f.write(b"MThd" + os.urandom(64) if ext != ".wav" else b"RIFF" + os.urandom(64))
    os.mkdir(j(f"adir{ext}"))
    os.symlink(j("does-not-exist"), j(f"dangling{ext}"))
    os.symlink(j(f"loop_b{ext}"), j(f"loop_a{ext}"))
    os.symlink(j(f"loop_a{ext}"), j(f"loop_b{ext}"))
    with open(j(f"text{ext}"), "w") as f:
        f.write("this is not audio\n")
    return {f"empty{ext}": "zero_byte", f"garbage{ext}": None, f"adir{ext}": "unreadable",
            f"dangling{ext}": "unreadable", f"loop_a{ext}": "unreadable",
            f"loop_b{ext}": "unreadable", f"text{ext}": "wrong_format"}
