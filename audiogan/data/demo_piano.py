"""Demo piano MIDI in the MAESTRO v3 layout, rendered from the Bach chorales music21 bundles.

The chorales are quantised four-part scores (MusicXML, read by `musicxml.py`). Each demo "performance" strings a
few of them together (so every file holds several 256-note windows) and renders them with
small seeded expressive deviations a pianist would add: a tempo per chorale, a slow tempo
drift, held fermatas and a final ritardando, onset jitter with the melody slightly ahead,
legato/detached articulation, and velocities shaped per voice and per phrase. They remain
chorales played from the score, not recorded performances.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import math
import os
import re

import numpy as np

from audiogan.data.musicxml import read_notes

log = logging.getLogger(__name__)

ROOT = "maestro-v3.0.0"
CSV_NAME = "maestro-v3.0.0.csv"
CSV_COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename",
               "audio_filename", "duration")
CHORALES_PER_FILE = 5
MAESTRO_YEARS = (2004, 2006, 2008, 2009, 2011, 2013, 2014, 2015, 2017, 2018)
_CHORALE = re.compile(r"^bwv\d+(\.\d+)?(-[0-9a-z]+)?\.(mxl|xml)$")


def chorale_paths() -> list[str]:
    """Sorted paths of the Bach chorales in music21's bundled corpus (BWV 846 is a prelude)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        from audiogan.errors import UserError
        raise UserError("the demo needs the pip package music21 (pip install music21)")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "corpus", "bach")
    names = sorted(n for n in os.listdir(folder) if _CHORALE.match(n) and not n.startswith("bwv846"))
    return [os.path.join(folder, n) for n in names]


def _resolve_unisons(voices: list[list[tuple]]) -> list[tuple]:
    """Merge voices; same pitch sounding twice ends the earlier note (unisons become one)."""
    notes = sorted(((p, on, dur, f, v) for v, vn in enumerate(voices) for p, on, dur, f in vn),
                   key=lambda x: (x[1], x[0], -x[2]))
    out: list[list] = []
    last: dict[int, list] = {}
    for p, on, dur, f, v in notes:
        prev = last.get(p)
        if prev is not None and prev[1] + prev[2] > on + 1e-9:
            if abs(prev[1] - on) < 1e-9:  # unison onset: keep one note, the longer
                prev[2] = max(prev[2], dur)
                prev[3] = prev[3] or f
                continue
            prev[2] = on - prev[1]
        note = [p, on, dur, f, v]
        out.append(note)
        last[p] = note
    return [tuple(n) for n in out]


def render_chorale(chorale: dict, rng: np.random.Generator, start_s: float) -> list[tuple]:
    """(start_s, end_s, pitch, velocity) of one chorale played from start_s."""
    notes = _resolve_unisons(chorale["voices"])
    if not notes:
        return []
    length_q = max(on + dur for _, on, dur, _, _ in notes)
    n_q = int(math.ceil(length_q)) + 2
    bpm = chorale["bpm"] * rng.uniform(0.95, 1.05) if chorale["bpm"] else rng.uniform(60, 92)
    drift = np.zeros(n_q)
    for q in range(1, n_q):  # slow tempo drift (AR(1) in log tempo)
        drift[q] = 0.9 * drift[q - 1] + rng.normal(0, 0.025)
    spq = 60.0 / bpm * np.exp(np.clip(drift, -0.12, 0.12))
    for _, on, dur, fermata, _ in notes:  # held fermatas
        if fermata:
            lo, hi = int(on), int(math.ceil(on + dur))
            spq[lo:hi] = np.maximum(spq[lo:hi], 60.0 / bpm * rng.uniform(1.5, 2.1))
    spq[max(0, int(length_q) - 2):] *= 1.25  # final ritardando
    cum = np.concatenate([[0.0], np.cumsum(spq)])

    def at(q: float) -> float:
        i = min(int(q), n_q - 1)
        return start_s + cum[i] + (q - i) * spq[i]

    base_vel = rng.uniform(52, 78)
    voice_vel = (8.0, 0.0, -2.0, 4.0)
    legato = rng.uniform(0.84, 0.96)
    fermata_q = sorted({on + dur for _, on, dur, f, _ in notes if f})
    out = []
    for p, on, dur, fermata, v in notes:
        # Phrase shape: louder in the middle of the phrase between fermatas.
        nxt = next((q for q in fermata_q if q > on), length_q)
        prv = max([0.0] + [q for q in fermata_q if q <= on])
        phase = (on - prv) / max(nxt - prv, 1e-6)
        vel = base_vel + voice_vel[min(v, 3)] + 9 * math.sin(math.pi * phase) + rng.normal(0, 4)
        lead = -0.006 if v == 0 else 0.0  # melody lead
        t0 = max(start_s, at(on) + lead + rng.normal(0, 0.008))
        span = at(on + dur) - at(on)
        t1 = t0 + max(0.04, span * (1.0 if fermata else legato * rng.uniform(0.95, 1.05)))
        out.append((t0, t1, int(p), int(np.clip(round(vel), 20, 115))))
    return out


def _no_same_pitch_overlap(notes: list[tuple]) -> list[tuple]:
    """After jitter: end an earlier note at a later same-pitch onset; drop slivers < 20 ms."""
    notes = sorted(notes, key=lambda n: (n[0], n[2]))
    last: dict[int, int] = {}
    keep = [list(n) for n in notes]
    for i, n in enumerate(keep):
        j = last.get(n[2])
        if j is not None and keep[j][1] > n[0]:
            keep[j][1] = n[0]
        last[n[2]] = i
    return [tuple(n) for n in keep if n[1] - n[0] >= 0.02]


def write_midi(notes: list[tuple], path: str) -> float:
    """Write one piano track (960 ticks per beat, 120 bpm as DESIGN.md); returns its duration."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0, name="Acoustic Grand Piano")
    piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for s, e, p, v in notes]
    pm.instruments.append(piano)
    pm.write(path)
    return float(pm.get_end_time())


def split_of(n_files: int, rng: np.random.Generator) -> list[str]:
    """~80/10/10 train/validation/test by a seeded permutation (each held-out split >= 1 of 3+)."""
    n_held = max(1, round(0.1 * n_files)) if n_files >= 3 else 0
    order = rng.permutation(n_files)
    splits = ["train"] * n_files
    for k, i in enumerate(order[: 2 * n_held]):
        splits[i] = "test" if k < n_held else "validation"
    return splits


def build(root: str, n_midi: int, seed: int) -> dict:
    """Write `root` (= OUT/maestro-v3.0.0 staging dir): MIDI files + CSV; returns a summary."""
    paths = chorale_paths()
    need = n_midi * CHORALES_PER_FILE
    if n_midi < 1 or need > len(paths):
        from audiogan.errors import UserError
        raise UserError(f"--n-midi must be 1..{len(paths) // CHORALES_PER_FILE} "
                        f"({len(paths)} chorales, {CHORALES_PER_FILE} per file)")
    rng = np.random.default_rng([seed, 0])
    chosen = [paths[i] for i in rng.permutation(len(paths))[:need]]
    chorales = [read_notes(p) for p in chosen]
    splits = split_of(n_midi, rng)
    rows, total_notes, windows, files = [], 0, 0, {}
    for j in range(n_midi):
        group = chorales[j * CHORALES_PER_FILE:(j + 1) * CHORALES_PER_FILE]
        prng = np.random.default_rng([seed, 1, j])
        notes, t = [], 0.0
        for ch in group:
            rendered = render_chorale(ch, prng, t)
            notes += rendered
            t = max(e for _, e, _, _ in rendered) + prng.uniform(1.2, 2.5) if rendered else t
        notes = _no_same_pitch_overlap(notes)
        year = int(MAESTRO_YEARS[prng.integers(len(MAESTRO_YEARS))])
        name = f"MUSIC21-Bach_Chorales_{j:03d}"
        os.makedirs(os.path.join(root, str(year)), exist_ok=True)
        duration = write_midi(notes, os.path.join(root, str(year), name + ".midi"))
        bwv = ", ".join(c["name"][3:] for c in group)
        rows.append({"canonical_composer": "Johann Sebastian Bach",
                     "canonical_title": f"Chorales BWV {bwv}", "split": splits[j], "year": year,
                     "midi_filename": f"{year}/{name}.midi", "audio_filename": f"{year}/{name}.wav",
                     "duration": round(duration, 3)})
        files[f"{year}/{name}.midi"] = [c["name"] for c in group]
        total_notes += len(notes)
        windows += len(notes) // 256
    rows.sort(key=lambda r: (r["canonical_title"], r["midi_filename"]))
    with open(os.path.join(root, CSV_NAME), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return {"files": n_midi, "chorales": need, "notes": total_notes,
            "windows_256_no_overlap": windows,
            "splits": {s: splits.count(s) for s in ("train", "validation", "test")},
            "hours": round(sum(r["duration"] for r in rows) / 3600, 3), "chorales_by_file": files}
