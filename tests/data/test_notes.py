import numpy as np
import pretty_midi

from audiogan.data import notes
from data_fixtures import piano_midi


def _onset_pitch_end(pm):
    rows = [(n.start, n.pitch, n.end) for i in pm.instruments if not i.is_drum for n in i.notes]
    return np.array(sorted(rows, key=lambda r: (r[0], r[1])))


def test_midi_notes_midi_round_trip_exact_to_1ms():
    pm = piano_midi(300, seed=1)
    arr = notes.midi_to_notes(pm)
    assert arr.shape == (300, 3) and arr[0, 1] == 0.0
    back = notes.notes_to_midi(arr)
    assert back.resolution == 960 and abs(back.get_tempo_changes()[1][0] - 120) < 1e-9
    a, b = _onset_pitch_end(pm), _onset_pitch_end(back)
    assert a.shape == b.shape
    assert np.array_equal(a[:, 1], b[:, 1])
    assert np.abs(a[:, [0, 2]] - b[:, [0, 2]]).max() < 1e-3
    # and through a real file
    assert np.abs(notes.midi_to_notes(back) - arr).max() < 1e-3


def test_sorting_merge_and_drums_excluded():
    pm = pretty_midi.PrettyMIDI()
    a, b, d = pretty_midi.Instrument(0), pretty_midi.Instrument(1), pretty_midi.Instrument(0, True)
    a.notes += [pretty_midi.Note(90, 64, 1.0, 1.5), pretty_midi.Note(90, 60, 0.0, 0.5)]
    b.notes += [pretty_midi.Note(90, 50, 1.0, 2.0)]
    d.notes += [pretty_midi.Note(90, 36, 0.2, 0.3)]
    pm.instruments += [a, b, d]
    arr = notes.midi_to_notes(pm)
    np.testing.assert_allclose(arr, [[60, 0, 0.5], [50, 1.0, 1.0], [64, 0.0, 0.5]])


def test_same_pitch_overlap_ends_earlier_note():
    arr = np.array([[60, 0.0, 1.0], [60, 0.5, 1.0], [62, 0.0, 0.2]])
    out = _onset_pitch_end(notes.notes_to_midi(arr))
    np.testing.assert_allclose(out, [[0, 60, 0.5], [0.5, 60, 1.5], [0.5, 62, 0.7]], atol=1e-3)


def test_apply_pedal_extends_to_release_and_cuts_at_restrike():
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(90, 60, 0.0, 0.2), pretty_midi.Note(90, 64, 0.1, 0.3),
                   pretty_midi.Note(90, 60, 0.5, 0.6), pretty_midi.Note(90, 67, 2.0, 2.1)]
    inst.control_changes += [pretty_midi.ControlChange(64, 127, 0.1),
                             pretty_midi.ControlChange(64, 0, 1.0)]
    pm.instruments.append(inst)
    np.testing.assert_allclose(notes.midi_to_notes(pm)[:, 2], [0.2, 0.2, 0.1, 0.1])
    np.testing.assert_allclose(notes.midi_to_notes(pm, apply_pedal=True)[:, 2],
                               [0.5, 0.9, 0.5, 0.1])


def test_windows_hop_and_count():
    arr = np.arange(30.0).reshape(10, 3)
    w = notes.windows(arr, 4, 2)
    assert w.shape == (4, 4, 3) and np.array_equal(w[1], arr[2:6])
    assert notes.windows(arr, 4, 4).shape == (2, 4, 3)
    assert notes.windows(arr, 11, 1).shape == (0, 11, 3)
