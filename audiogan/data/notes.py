"""MIDI <-> note arrays (pitch, step_s, duration_s) and fixed-length note windows.

A note array is [n, 3] float64: MIDI pitch, seconds since the previous note's onset
(0 for the first note and inside chords) and duration in seconds, sorted by
(onset, pitch), drums excluded and all other tracks merged (DESIGN.md "Notes").
"""

from __future__ import annotations

import io
import warnings
from typing import BinaryIO, Union

import numpy as np
import pretty_midi

# 960 ticks per beat at 120 bpm: 0.52 ms per tick, so round trips are exact to 1 ms.
TICKS_PER_BEAT = 960
TEMPO_BPM = 120.0
VELOCITY = 100
SUSTAIN_CC = 64

MidiSource = Union[str, bytes, BinaryIO, pretty_midi.PrettyMIDI]


def load_midi(src: MidiSource) -> pretty_midi.PrettyMIDI:
    """Parse a path, raw bytes or a file object (pretty_midi warnings are noise here)."""
    if isinstance(src, pretty_midi.PrettyMIDI):
        return src
    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pretty_midi.PrettyMIDI(src)


def _pedal_intervals(inst: pretty_midi.Instrument) -> list[tuple[float, float]]:
    """Sustain-down intervals [start, end) from CC64 (>= 64 is down)."""
    intervals, down_at = [], None
    for cc in sorted((c for c in inst.control_changes if c.number == SUSTAIN_CC),
                     key=lambda c: c.time):
        if cc.value >= 64 and down_at is None:
            down_at = cc.time
        elif cc.value < 64 and down_at is not None:
            intervals.append((down_at, cc.time))
            down_at = None
    if down_at is not None:
        intervals.append((down_at, float("inf")))
    return intervals


def _onsets_pitches_ends(pm: pretty_midi.PrettyMIDI, apply_pedal: bool) -> np.ndarray:
    rows = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        part = np.array([(n.start, n.pitch, n.end) for n in inst.notes], dtype=np.float64)
        if not len(part):
            continue
        if apply_pedal:
            for a, b in _pedal_intervals(inst):
                held = (part[:, 2] >= a) & (part[:, 2] < b)
                part[held, 2] = np.maximum(part[held, 2], min(b, pm.get_end_time()))
        rows.append(part)
    if not rows:
        return np.zeros((0, 3))
    onset_pitch_end = np.concatenate(rows)
    order = np.lexsort((onset_pitch_end[:, 1], onset_pitch_end[:, 0]))
    onset_pitch_end = onset_pitch_end[order]
    if apply_pedal:
        # A sustained note still stops when its key is struck again.
        _cut_same_pitch_overlaps(onset_pitch_end)
    return onset_pitch_end


def _cut_same_pitch_overlaps(onset_pitch_end: np.ndarray) -> None:
    """In place: an earlier note ends no later than the next onset of its pitch."""
    last: dict[int, int] = {}
    for i, (onset, pitch, _) in enumerate(onset_pitch_end):
        j = last.get(int(pitch))
        if j is not None and onset_pitch_end[j, 2] > onset:
            onset_pitch_end[j, 2] = onset
        last[int(pitch)] = i


def midi_to_notes(src: MidiSource, apply_pedal: bool = False) -> np.ndarray:
    """MIDI -> [n, 3] float64 (pitch, step_s, duration_s), sorted by (onset, pitch)."""
    ope = _onsets_pitches_ends(load_midi(src), apply_pedal)
    notes = np.zeros((len(ope), 3))
    if len(ope):
        notes[:, 0] = ope[:, 1]
        notes[1:, 1] = np.diff(ope[:, 0])
        notes[:, 2] = ope[:, 2] - ope[:, 0]
    return notes


def notes_to_midi(notes: np.ndarray, program: int = 0) -> pretty_midi.PrettyMIDI:
    """[n, 3] (pitch, step_s, duration_s) -> one piano track at 120 bpm, 960 ticks per beat.

    A note that overlaps an earlier note of the same pitch ends that earlier note at its
    own onset (MIDI cannot hold both); notes that become empty are dropped.
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    pm = pretty_midi.PrettyMIDI(resolution=TICKS_PER_BEAT, initial_tempo=TEMPO_BPM)
    inst = pretty_midi.Instrument(program=program)
    onsets = np.cumsum(np.maximum(notes[:, 1], 0.0))
    ends = onsets + np.maximum(notes[:, 2], 0.0)
    pitches = np.clip(np.rint(notes[:, 0]), 0, 127).astype(int)
    ope = np.stack([onsets, pitches, ends], -1)
    # Stable order by onset then pitch, the order the overlap rule is defined on.
    ope = ope[np.lexsort((ope[:, 1], ope[:, 0]))] if len(ope) else ope
    _cut_same_pitch_overlaps(ope)
    for onset, pitch, end in ope:
        if end > onset:
            inst.notes.append(pretty_midi.Note(velocity=VELOCITY, pitch=int(pitch),
                                               start=float(onset), end=float(end)))
    pm.instruments.append(inst)
    return pm


def windows(notes: np.ndarray, window: int, hop: int) -> np.ndarray:
    """[n, 3] -> [k, window, 3] windows starting every `hop` notes (k = 0 if n < window)."""
    notes = np.asarray(notes)
    if window < 1 or hop < 1:
        raise ValueError("window and hop must be >= 1")
    n = len(notes)
    if n < window:
        return np.zeros((0, window, notes.shape[-1] if notes.ndim == 2 else 3), notes.dtype)
    starts = np.arange(0, n - window + 1, hop)
    view = np.lib.stride_tricks.sliding_window_view(notes, window, axis=0)  # [n-w+1, 3, w]
    return np.ascontiguousarray(np.swapaxes(view[starts], 1, 2))
