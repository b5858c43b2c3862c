"""A small MusicXML (partwise) note reader for the demo's chorales, with xml.etree.

music21's full MusicXML import builds a rich object model and costs ~50-90 ms of CPU per
chorale; the demo needs only sounding notes, so this reader takes ~2-5 ms and keeps
`audiogan data demo` inside its time budget on a busy 2-core machine. It understands what
the corpus chorales use: divisions, notes, rests, chords, ties, grace notes (skipped),
backup/forward, transposition, fermatas and sound tempo. A test checks it note for note
against music21 (`parse_chorale_music21`).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
import zipfile
from fractions import Fraction

_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _root(path: str) -> ET.Element:
    if path.endswith(".mxl"):
        with zipfile.ZipFile(path) as zf:
            name = None
            if "META-INF/container.xml" in zf.namelist():
                container = ET.fromstring(zf.read("META-INF/container.xml"))
                rootfile = next((e for e in container.iter() if e.tag.endswith("rootfile")), None)
                name = rootfile.get("full-path") if rootfile is not None else None
            if name is None:
                name = next(n for n in zf.namelist()
                            if n.endswith(".xml") and not n.startswith("META-INF"))
            return ET.fromstring(zf.read(name))
    return ET.parse(path).getroot()


def read_notes(path: str) -> dict:
    """{"name", "voices": [[(midi, onset_q, dur_q, fermata), ...] per part], "bpm"}.

    Onsets and durations are in quarter notes from the start; tied notes are merged.
    """
    root = _root(path)
    if root.tag != "score-partwise":
        raise ValueError(f"{os.path.basename(path)}: only partwise MusicXML is supported")
    bpm = None
    voices = []
    for part in root.findall("part"):
        divisions = Fraction(1)
        transpose = 0
        start = Fraction(0)  # measure start, in quarters
        notes: list[list] = []
        held: dict[int, list] = {}
        for measure in part.findall("measure"):
            pos = Fraction(0)  # position within the measure, in quarters
            end = Fraction(0)
            last_onset = Fraction(0)
            for el in measure:
                if el.tag == "attributes":
                    if el.findtext("divisions"):
                        divisions = Fraction(el.findtext("divisions"))
                    tr = el.find("transpose")
                    if tr is not None:
                        transpose = int(tr.findtext("chromatic") or 0) + 12 * int(
                            tr.findtext("octave-change") or 0)
                elif el.tag in ("backup", "forward"):
                    d = Fraction(el.findtext("duration")) / divisions
                    pos += -d if el.tag == "backup" else d
                elif el.tag == "direction" or el.tag == "sound":
                    snd = el if el.tag == "sound" else el.find("sound")
                    if snd is not None and snd.get("tempo") and bpm is None:
                        bpm = float(snd.get("tempo"))
                elif el.tag == "note":
                    if el.find("grace") is not None:
                        continue
                    dur = Fraction(el.findtext("duration") or 0) / divisions
                    onset = last_onset if el.find("chord") is not None else pos
                    if el.find("chord") is None:
                        pos += dur
                    last_onset = onset
                    if el.find("rest") is not None or el.find("pitch") is None or dur <= 0:
                        end = max(end, pos)
                        continue
                    p = el.find("pitch")
                    midi = (12 * (int(p.findtext("octave")) + 1) + _STEPS[p.findtext("step")]
                            + round(float(p.findtext("alter") or 0)) + transpose)
                    ties = {t.get("type") for t in el.findall("tie")}
                    fermata = el.find("notations/fermata") is not None
                    at = start + onset
                    prev = held.get(midi)
                    if "stop" in ties and prev and prev[1] + prev[2] == at:
                        prev[2] += dur
                        prev[3] = prev[3] or fermata
                    else:
                        note = [midi, at, dur, fermata]
                        notes.append(note)
                        held[midi] = note
                end = max(end, pos)
            start += end
        notes.sort(key=lambda n: n[1])  # time order across voices, as music21's flat view
        voices.append([(m, float(on), float(d), f) for m, on, d, f in notes])
    return {"name": os.path.splitext(os.path.basename(path))[0], "voices": voices, "bpm": bpm}
