"""Every wav row of DESIGN.md's input-handling table, through the shared per-file function."""

import os

import numpy as np
import pytest
import soundfile as sf

from audiogan.data import audio, perfile, spectro
from data_fixtures import bad_inputs, piano_midi, tone, write_midi, write_wav

SPEC = perfile.Params("spectrogram", 128, 128)
NOTES = perfile.Params("notes", 8, 4)


def run(path, params=SPEC, split="train"):
    return perfile.process_file({"path": str(path), "key": os.path.basename(path),
                                 "split": split, "label": ""}, params)


def test_unreadable_and_malformed_wavs_rejected(tmp_path):
    expected = bad_inputs(tmp_path, ".wav")
    good = write_wav(tmp_path / "good.wav", tone(0.5))
    data = open(good, "rb").read()
    (tmp_path / "truncated.wav").write_bytes(data[:len(data) // 2])
    (tmp_path / "midi.wav").write_bytes(b"MThd\x00\x00\x00\x06" + b"\x00" * 20)
    expected.update({"truncated.wav": "truncated", "midi.wav": "wrong_format",
                     "garbage.wav": "unparseable"})
    for name, reason in expected.items():
        r = run(tmp_path / name)
        assert r.reject == reason, name
        assert r.x.shape == (0, 128, 128)


@pytest.mark.parametrize("seconds,rate,subtype,channels,repairs", [
    (0.5, 16000, "PCM_16", 1, ["padded"]),
    (1.024, 16000, "PCM_16", 1, []),
    (0.5, 44100, "PCM_16", 1, ["resampled", "padded"]),
    (0.5, 8000, "PCM_16", 1, ["resampled", "padded"]),
    (0.5, 16000, "PCM_16", 2, ["mixed_to_mono", "padded"]),
    (0.5, 16000, "PCM_U8", 1, ["converted_pcm_u8", "padded"]),
    (0.5, 16000, "PCM_24", 1, ["converted_pcm_24", "padded"]),
    (0.5, 16000, "PCM_32", 1, ["converted_pcm_32", "padded"]),
    (0.5, 16000, "FLOAT", 1, ["converted_float", "padded"]),
    (0.5, 16000, "DOUBLE", 3, ["converted_double", "mixed_to_mono", "padded"]),
    (3.0, 16000, "PCM_16", 1, ["trimmed"]),
])
def test_repairs(tmp_path, seconds, rate, subtype, channels, repairs):
    path = write_wav(tmp_path / "x.wav", tone(seconds, rate, channels=channels), rate, subtype)
    r = run(path)
    assert r.reject == "" and list(r.repaired) == repairs
    assert r.x.shape == (1, 128, 128) and r.x.dtype == np.float32
    clip, _ = audio.clip_from_wav(open(path, "rb").read())
    assert clip.shape == (16384,) and clip.dtype == np.float32 and np.abs(clip).max() <= 1.0
    np.testing.assert_allclose(r.x[0], spectro.log_magnitude(clip), atol=1e-5)
    # a 0.5 amplitude tone stays ~0.5 whatever the bit depth, rate or channel count
    assert 0.45 < np.abs(clip).max() < 0.55


def test_float_above_full_scale_scaled_not_clipped(tmp_path):
    path = write_wav(tmp_path / "loud.wav", tone(0.5, amp=4.0), subtype="FLOAT")
    clip, _ = audio.clip_from_wav(open(path, "rb").read())
    assert abs(np.abs(clip).max() - 1.0) < 1e-3


def test_trim_keeps_the_loudest_window(tmp_path):
    x = np.concatenate([tone(1.0, amp=0.01), tone(16384 / 16000, amp=0.9), tone(1.0, amp=0.01)])
    clip, rep = audio.clip_from_wav(open(write_wav(tmp_path / "l.wav", x), "rb").read())
    assert rep == ["trimmed"] and np.allclose(clip, x[16000:16000 + 16384], atol=1e-4)


@pytest.mark.parametrize("x,reason", [
    (np.where(np.arange(8000) == 100, np.nan, tone(0.5)), "nan_or_inf"),
    (np.where(np.arange(8000) == 5, np.inf, tone(0.5)), "nan_or_inf"),
    (tone(0.5, amp=5e-5), "silent"),
    (np.zeros(8000), "silent"),
    (tone(0.09), "too_short"),
])
def test_rejected_signals(tmp_path, x, reason):
    path = write_wav(tmp_path / "s.wav", x, subtype="FLOAT")
    assert run(path).reject == reason


def test_identical_files_both_processed(tmp_path):
    a = write_wav(tmp_path / "a.wav", tone(0.3))
    b = tmp_path / "b.wav"
    b.write_bytes(open(a, "rb").read())
    ra, rb = run(a), run(b)
    assert ra.reject == rb.reject == "" and np.array_equal(ra.x, rb.x)


def test_midi_rows(tmp_path):
    import pretty_midi

    expected = bad_inputs(tmp_path, ".mid")
    expected["garbage.mid"] = run(tmp_path / "garbage.mid", NOTES).reject  # any reason
    assert expected["garbage.mid"] in ("unparseable", "truncated")
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(0))
    cc = pretty_midi.PrettyMIDI()
    cc.instruments.append(pretty_midi.Instrument(0))
    cc.instruments[0].control_changes.append(pretty_midi.ControlChange(64, 127, 0.5))
    write_midi(tmp_path / "none.mid", empty)
    write_midi(tmp_path / "cc.mid", cc)
    write_midi(tmp_path / "drums.mid", piano_midi(20, drums=True))
    write_midi(tmp_path / "short.mid", piano_midi(7))
    good = write_midi(tmp_path / "good.mid", piano_midi(20))
    data = open(good, "rb").read()
    (tmp_path / "cut.mid").write_bytes(data[:len(data) - 40])
    expected.update({"none.mid": "no_notes", "cc.mid": "only_control_changes",
                     "drums.mid": "drums_only", "short.mid": "too_short", "cut.mid": "truncated"})
    for name, reason in expected.items():
        assert run(tmp_path / name, NOTES).reject == reason, name
    r = run(good, NOTES)
    assert r.reject == "" and r.x.shape == (4, 8, 3) and r.repaired == ()  # (20-8)//4+1
    assert run(good, NOTES, split="test").x.shape == (2, 8, 3)              # hop = window
    merged = run(write_midi(tmp_path / "two.mid", piano_midi(10, tracks=2)), NOTES)
    assert merged.repaired == ("merged_tracks",) and merged.x.shape == (4, 8, 3)
    assert sf.available_formats()  # soundfile import kept honest
