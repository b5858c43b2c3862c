"""Preprocess faults: one planted corpus per media kind through the CLI (every row of the
input-handling table plus the issue's extras), and a real SIGKILL mid-run then a re-run.
Per-file semantics of each row are asserted in tests/data (referenced in the report)."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pretty_midi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audiogan import cli
from audiogan.data import preprocess, shards
from tests.data.data_fixtures import piano_midi, tone, write_midi, write_wav
from tests.reliability.procs import Command, record

pytestmark = pytest.mark.ray


def rows(out) -> list[dict]:
    t = pa.concat_tables([pq.read_table(f) for f in shards.shard_files(str(out))])
    return t.sort_by("key").to_pylist()


def plant_common(root, ext: str) -> dict[str, str]:
    """Unreadable things every kind must list: -> {key: reason}."""
    os.makedirs(root / "bad", exist_ok=True)
    (root / "bad" / f"empty{ext}").write_bytes(b"")
    (root / "bad" / f"text{ext}").write_text("not media\n")
    os.mkdir(root / "bad" / f"x{ext}")                                  # a directory
    os.symlink(root / "nowhere", root / "bad" / f"dangling{ext}")
    os.symlink(root / "bad" / f"loop_b{ext}", root / "bad" / f"loop_a{ext}")  # link loop
    os.symlink(root / "bad" / f"loop_a{ext}", root / "bad" / f"loop_b{ext}")
    os.mkfifo(root / "bad" / f"fifo{ext}")                              # would block open()
    os.symlink("/dev/zero", root / "bad" / f"zero{ext}")                # would never end
    return {f"bad/empty{ext}": "zero_byte", f"bad/text{ext}": "wrong_format",
            f"bad/x{ext}": "unreadable", f"bad/dangling{ext}": "unreadable",
            f"bad/loop_a{ext}": "unreadable", f"bad/loop_b{ext}": "unreadable",
            f"bad/fifo{ext}": "unreadable", f"bad/zero{ext}": "unreadable"}


def check(out, expected_rejects, n_good, repaired, capsys, rc):
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("preprocess ")
    listed = [json.loads(x) for x in open(out / "rejects.jsonl")]
    assert {r["path"]: r["reason"] for r in listed} == expected_rejects
    m = json.load(open(out / "manifest.json"))
    assert m["files"]["train"] == n_good and m["params"]["n_source_files"] == \
        n_good + len(expected_rejects)                     # every file accounted for
    assert m["repaired"] == repaired
    return m, listed


def test_planted_midi_corpus(ray_cluster, tmp_path, capsys):
    src = tmp_path / "midi"
    expected = plant_common(src, ".mid")
    good = {f"g{i}.mid": piano_midi(20, seed=i) for i in range(3)}
    good["multi.mid"] = piano_midi(12, seed=9, tracks=3)             # F: merged
    for name, pm in good.items():
        write_midi(src / name, pm)
    (src / "copy.mid").write_bytes((src / "g0.mid").read_bytes())     # identical: processed
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(0))
    write_midi(src / "none.mid", empty)
    cc = pretty_midi.PrettyMIDI()
    cc.instruments.append(pretty_midi.Instrument(0))
    cc.instruments[0].control_changes += [pretty_midi.ControlChange(64, 127, t) for t in (0, 1)]
    write_midi(src / "cc_only.mid", cc)
    write_midi(src / "drums.mid", piano_midi(20, drums=True))
    write_midi(src / "short.mid", piano_midi(5))
    blob = (src / "g1.mid").read_bytes()
    (src / "cut.mid").write_bytes(blob[: len(blob) - 40])
    import soundfile as sf
    sf.write(str(src / "wav_inside.mid"), tone(0.2), 16000, format="WAV")
    expected.update({"none.mid": "no_notes", "cc_only.mid": "only_control_changes",
                     "drums.mid": "drums_only", "short.mid": "too_short", "cut.mid": "truncated",
                     "wav_inside.mid": "wrong_format"})
    out = tmp_path / "out"
    rc = cli.main(["preprocess", "midi-dir", "--source", str(src), "--out", str(out),
                   "--window", "8", "--hop", "4"])
    m, listed = check(out, expected, 5, {"merged_tracks": 1}, capsys, rc)
    assert m["counts"]["train"] == 4 * 4 + (36 - 8) // 4 + 1   # g0,g1,g2,copy + 36 merged notes
    record("preprocess_planted_midi", files=len(expected) + 5, rejected=len(listed),
           processed=5, examples=m["counts"]["train"], seconds=m["seconds"])


def test_planted_wav_corpus(ray_cluster, tmp_path, capsys):
    src = tmp_path / "wav"
    expected = plant_common(src, ".wav")
    os.makedirs(src / "ok")
    write_wav(src / "ok" / "plain.wav", tone(0.5))                              # padded
    write_wav(src / "ok" / "exact.wav", tone(16384 / 16000))                   # as is
    write_wav(src / "ok" / "cd.wav", tone(0.5, 44100, channels=2), 44100, "PCM_24")
    write_wav(src / "ok" / "u8.wav", tone(0.5), 8000, "PCM_U8")
    write_wav(src / "ok" / "i32.wav", tone(0.5, 22050), 22050, "PCM_32")
    write_wav(src / "ok" / "float.wav", tone(0.5, channels=4), subtype="FLOAT")
    write_wav(src / "ok" / "long30s.wav", tone(30.0))                          # trimmed
    write_wav(src / "ok" / "clip0.1s.wav", tone(0.1))                          # padded
    (src / "ok" / "copy.wav").write_bytes((src / "ok" / "plain.wav").read_bytes())
    os.makedirs(src / "no")
    write_wav(src / "no" / "short.wav", tone(0.05))
    write_wav(src / "no" / "nan.wav", np.where(np.arange(8000) == 9, np.nan, tone(0.5)),
              subtype="FLOAT")
    write_wav(src / "no" / "inf.wav", np.where(np.arange(8000) == 9, np.inf, tone(0.5)),
              subtype="DOUBLE")
    write_wav(src / "no" / "silent.wav", np.zeros(8000))
    write_wav(src / "no" / "hiss.wav", tone(0.5, amp=5e-5), subtype="FLOAT")
    blob = (src / "ok" / "plain.wav").read_bytes()
    (src / "no" / "truncated.wav").write_bytes(blob[: len(blob) // 2])
    (src / "no" / "midi.wav").write_bytes(b"MThd\x00\x00\x00\x06" + b"\x00" * 20)
    (src / "no" / "garbage.wav").write_bytes(b"RIFF" + bytes(range(64)))
    expected.update({"no/short.wav": "too_short", "no/nan.wav": "nan_or_inf",
                     "no/inf.wav": "nan_or_inf", "no/silent.wav": "silent",
                     "no/hiss.wav": "silent", "no/truncated.wav": "truncated",
                     "no/midi.wav": "wrong_format", "no/garbage.wav": "unparseable"})
    out = tmp_path / "out"
    rc = cli.main(["preprocess", "wav-dir", "--source", str(src), "--out", str(out)])
    repaired = {"padded": 7, "trimmed": 1, "resampled": 3, "mixed_to_mono": 2,
                "converted_pcm_24": 1, "converted_pcm_u8": 1, "converted_pcm_32": 1,
                "converted_float": 1}
    m, listed = check(out, expected, 9, dict(sorted(repaired.items())), capsys, rc)
    assert m["counts"]["train"] == 9 and m["labels"] == ["ok"]
    x = shards.load_split(str(out), "train", scaled=False)
    assert x.x.shape == (9, 128, 128) and np.isfinite(x.x).all()
    record("preprocess_planted_wav", files=len(expected) + 9, rejected=len(listed),
           processed=9, seconds=m["seconds"])


KILLABLE = """
import sys
from audiogan.data import preprocess
preprocess.SHARD_BYTES = {shard_bytes}  # many small shards, so a kill lands mid-stream
from audiogan.cli import main
sys.exit(main(sys.argv[1:]))
"""
SHARD_BYTES = 6000


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_identical_rows(ray_cluster, tmp_path, capsys,
                                                         monkeypatch):
    src = tmp_path / "src"
    os.makedirs(src / "bad")
    for i in range(120):
        write_midi(src / f"p{i:03d}.mid", piano_midi(60 + i % 20, seed=i, tracks=1 + (i % 7 == 0)))
    write_midi(src / "bad" / "short.mid", piano_midi(3))
    (src / "bad" / "empty.mid").write_bytes(b"")
    argv = ["preprocess", "midi-dir", "--source", str(src), "--window", "16", "--hop", "8"]
    killed = tmp_path / "killed"
    cmd = Command(argv + ["--out", str(killed)],
                  python_code=KILLABLE.format(shard_bytes=SHARD_BYTES))
    try:
        started = cmd.wait_for(lambda: len(shards.shard_files(str(killed))) >= 1, 180, 0.02)
        n_at_kill = len(shards.shard_files(str(killed))) if started else 0
        cmd.signal(signal.SIGKILL)
        cmd.wait(60)
        left_after_kill = cmd.leftovers(grace_s=3)
    finally:
        cmd.cleanup()
    assert started and not (killed / "manifest.json").exists(), cmd.output[-2000:]
    # training refuses the incomplete directory: one line, exit 2
    rc = cli.main(["train", "pianogan-cpu", "--data", str(killed), "--out",
                   str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "manifest.json" in err
    monkeypatch.setattr(preprocess, "SHARD_BYTES", SHARD_BYTES)
    assert cli.main(argv + ["--out", str(killed)]) == 0                 # re-run: cleared, redone
    assert cli.main(argv + ["--out", str(tmp_path / "clean")]) == 0     # uninterrupted
    again, clean = rows(killed), rows(tmp_path / "clean")
    assert len(clean) > 100 and again == clean
    assert (killed / "rejects.jsonl").read_text() == (tmp_path / "clean" / "rejects.jsonl").read_text()
    record("preprocess_sigkill", shards_at_kill=n_at_kill,
           shards_total=len(shards.shard_files(str(killed))), rows=len(clean),
           rows_identical=again == clean, ray_processes_left_after_driver_sigkill=len(left_after_kill))
