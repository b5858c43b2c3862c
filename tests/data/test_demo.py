"""`audiogan data demo`: a tiny offline build, checked for layout, validity and determinism."""

from __future__ import annotations

import csv
import os
import re

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from audiogan.cli import main
from audiogan.data import demo, demo_piano, demo_speech
from audiogan.errors import UserError

N_MIDI, N_PER_DIGIT, SEED = 3, 3, 7


def _build(out):
    return demo.build_demo(str(out), n_midi=N_MIDI, n_per_digit=N_PER_DIGIT, seed=SEED)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, _build(out)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def test_maestro_layout_and_valid_midi(built):
    out, prov = built
    root = out / "maestro-v3.0.0"
    with open(root / "maestro-v3.0.0.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == ("canonical_composer", "canonical_title", "split",
                                            "year", "midi_filename", "audio_filename", "duration")
        rows = list(reader)
    assert len(rows) == N_MIDI
    assert sorted(r["split"] for r in rows) == ["test", "train", "validation"]
    for r in rows:
        assert re.fullmatch(r"\d{4}/[^/]+\.midi", r["midi_filename"])
        assert r["midi_filename"].startswith(r["year"] + "/")
        pm = pretty_midi.PrettyMIDI(str(root / r["midi_filename"]))
        assert pm.resolution == 960
        assert abs(pm.get_end_time() - float(r["duration"])) < 1e-3
        notes = [n for i in pm.instruments for n in i.notes]
        assert len(notes) >= 3 * 256  # several windows per file
        assert all(21 <= n.pitch <= 108 and 1 <= n.velocity <= 127 and n.end > n.start
                   for n in notes)
        # No two sounding notes of the same pitch (MIDI cannot hold both).
        by_pitch = {}
        for n in sorted(notes, key=lambda n: n.start):
            assert by_pitch.get(n.pitch, -1.0) <= n.start + 1e-6
            by_pitch[n.pitch] = n.end
        # Expressive rendering: not all onsets on one quantised grid, velocities vary.
        assert len({n.velocity for n in notes}) > 10
    assert prov["piano"]["files"] == N_MIDI
    assert prov["piano"]["notes"] == sum(
        len(pretty_midi.PrettyMIDI(str(root / r["midi_filename"])).instruments[0].notes)
        for r in rows)


def test_sc09_layout_and_valid_wavs(built):
    out, prov = built
    root = out / "sc09"
    wavs = [f for f in _files(root) if f.endswith(".wav")]
    assert len(wavs) == 10 * N_PER_DIGIT
    assert sorted({w.split("/")[0] for w in wavs}) == sorted(demo_speech.DIGITS)
    speakers = {}
    for w in wavs:
        digit, name = w.split("/")
        assert re.fullmatch(r"[0-9a-f]{8}_nohash_\d+\.wav", name)
        info = sf.info(str(root / w))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == \
            (16000, 1, 16000, "PCM_16")
        x, _ = sf.read(str(root / w), dtype="float32")
        assert np.isfinite(x).all() and np.abs(x).max() > 0.05
        speakers.setdefault(name.split("_")[0], set()).add(digit)
    assert all(digits == set(demo_speech.DIGITS) for digits in speakers.values())
    val = (root / "validation_list.txt").read_text().split()
    test = (root / "testing_list.txt").read_text().split()
    assert val and test and not set(val) & set(test) and set(val + test) <= set(wavs)
    # Splits are by speaker: a held-out speaker's every clip is in one list.
    for lst in (val, test):
        held = {w.split("/")[1].split("_")[0] for w in lst}
        assert {w for w in wavs if w.split("/")[1].split("_")[0] in held} == set(lst)
    assert prov["digits"]["clips"] == 10 * N_PER_DIGIT
    assert sum(prov["digits"]["splits"].values()) == 10 * N_PER_DIGIT


def test_provenance(built):
    out, prov = built
    assert prov["params"] == {"n_midi": N_MIDI, "n_per_digit": N_PER_DIGIT, "seed": SEED,
                              "format": demo.DEMO_FORMAT}
    assert prov["packages"]["music21"] and prov["packages"]["espeakng-loader"]
    assert prov["digits"]["espeak_ng"] and len(prov["digits"]["speakers"]) == N_PER_DIGIT
    assert (out / "PROVENANCE.json").exists()
    assert not [n for n in os.listdir(out) if n.startswith(".demo-")]


def test_rerun_is_a_no_op(built, capsys):
    out, prov = built
    before = {f: os.stat(out / f).st_mtime_ns for f in _files(out)}
    rc = main(["data", "demo", "--out", str(out), "--n-midi", str(N_MIDI),
               "--n-per-digit", str(N_PER_DIGIT), "--seed", str(SEED)])
    assert rc == 0 and "nothing to do" in capsys.readouterr().err
    assert {f: os.stat(out / f).st_mtime_ns for f in _files(out)} == before
    assert not demo._is_complete(str(out), {**prov["params"], "seed": SEED + 1})


def test_deterministic_for_a_seed(built, tmp_path):
    out, _ = built
    _build(tmp_path)
    a = [f for f in _files(out) if f != "PROVENANCE.json"]
    assert a == [f for f in _files(tmp_path) if f != "PROVENANCE.json"]
    for f in a:
        assert (out / f).read_bytes() == (tmp_path / f).read_bytes(), f


def test_refuses_to_replace_non_demo_data(tmp_path):
    (tmp_path / "maestro-v3.0.0").mkdir()
    (tmp_path / "maestro-v3.0.0" / "real.midi").write_bytes(b"MThd")
    with pytest.raises(UserError, match="is not demo data"):
        _build(tmp_path)
    assert (tmp_path / "maestro-v3.0.0" / "real.midi").exists()


def test_bad_counts_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--n-midi"):
        demo_piano.build(str(tmp_path), 10_000, 0)
    with pytest.raises(UserError, match="--n-midi must be 1..81"):
        demo.build_demo(str(tmp_path / "x"), n_midi=999)
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="--n-per-digit"):
        demo.build_demo(str(tmp_path), n_midi=1, n_per_digit=0)


SCORE = """<?xml version="1.0"?>
<score-partwise><part-list/>
<part id="P1">
 <measure number="0">
  <attributes><divisions>2</divisions><transpose><chromatic>-2</chromatic></transpose></attributes>
  <direction><sound tempo="72"/></direction>
  <note><pitch><step>C</step><octave>5</octave></pitch><duration>2</duration></note>
 </measure>
 <measure number="1">
  <note><grace/><pitch><step>D</step><octave>5</octave></pitch></note>
  <note><pitch><step>E</step><alter>-1</alter><octave>5</octave></pitch><duration>4</duration>
   <tie type="start"/></note>
  <note><chord/><pitch><step>G</step><octave>4</octave></pitch><duration>4</duration></note>
  <note><rest/><duration>1</duration></note>
  <note><pitch><step>E</step><alter>-1</alter><octave>5</octave></pitch><duration>1</duration>
   <tie type="stop"/></note>
  <backup><duration>6</duration></backup>
  <note><pitch><step>C</step><octave>4</octave></pitch><duration>6</duration>
   <notations><fermata/></notations></note>
 </measure>
</part>
</score-partwise>
"""


def test_musicxml_reader_exact(tmp_path):
    from audiogan.data.musicxml import read_notes

    path = tmp_path / "tiny.xml"
    path.write_text(SCORE)
    got = read_notes(str(path))
    # Sounding pitch = written - 2; pickup measure of 1 quarter; grace note skipped; the rest
    # breaks the tie's continuity, so the E-flat at 3.5 stays a separate note.
    assert got["bpm"] == 72.0
    assert got["voices"] == [[(70, 0.0, 1.0, False), (73, 1.0, 2.0, False),
                              (65, 1.0, 2.0, False), (58, 1.0, 3.0, True),
                              (73, 3.5, 0.5, False)]]


def _music21_notes(path):
    """Reference: the same notes through music21's own MusicXML import (ties merged)."""
    from music21 import converter, expressions

    voices = []
    for part in converter.parse(path, forceSource=True).parts:
        notes, held = [], {}
        for n in part.flatten().notes:
            onset, dur = float(n.offset), float(n.quarterLength)
            if dur <= 0:
                continue
            fermata = any(isinstance(e, expressions.Fermata) for e in n.expressions)
            tie = n.tie.type if n.tie is not None else None
            for p in n.pitches:
                prev = held.get(p.midi)
                if tie in ("continue", "stop") and prev and abs(prev[1] + prev[2] - onset) < 1e-9:
                    prev[2] += dur
                    prev[3] = prev[3] or fermata
                    continue
                held[p.midi] = [p.midi, onset, dur, fermata]
                notes.append(held[p.midi])
        voices.append([tuple(x) for x in notes])
    return voices


def test_musicxml_reader_matches_music21_on_corpus_chorales():
    from audiogan.data.musicxml import read_notes

    paths = demo_piano.chorale_paths()
    assert len(paths) >= 400
    # Plain, tied, multi-voice (forward) and instrumental chorales.
    for name in ("bwv1.6.mxl", "bwv10.7.mxl", "bwv190.7-inst.mxl", "bwv67.4.xml"):
        path = next(p for p in paths if os.path.basename(p) == name)
        assert read_notes(path)["voices"] == _music21_notes(path), name
