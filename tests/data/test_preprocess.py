"""The whole stage on tiny fixtures, on the shared session Ray cluster."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audiogan import cli
from audiogan.data import perfile, preprocess, shards, sources
from audiogan.errors import UserError
from data_fixtures import bad_inputs, piano_midi, tone, write_midi, write_wav

pytestmark = pytest.mark.ray
NOTES = perfile.Params("notes", 8, 4)
SPEC = perfile.Params("spectrogram", 128, 128)


def rows(out):
    t = pa.concat_tables([pq.read_table(f) for f in shards.shard_files(str(out))])
    return t.sort_by("key").to_pylist()


@pytest.fixture(scope="module")
def midi_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("midi")
    for i in range(6):
        write_midi(root / f"p{i}.mid", piano_midi(20 + 5 * i, seed=i, tracks=1 + (i == 3)))
    write_midi(root / "sub" / "short.mid" if os.makedirs(root / "sub") is None else None,
               piano_midi(3))
    bad_inputs(root / "bad", ".mid")
    return root


def test_wav_dir_table_rows(ray_cluster, tmp_path):
    src = tmp_path / "src"
    expected_rejects = {f"bad/{k}": v for k, v in bad_inputs(src / "bad", ".wav").items()}
    expected_rejects["bad/garbage.wav"] = "unparseable"
    os.makedirs(src / "one")
    write_wav(src / "one" / "a.wav", tone(0.5))
    write_wav(src / "one" / "b.wav", tone(0.5, 44100, channels=2), 44100, "PCM_24")
    write_wav(src / "one" / "c.wav", tone(2.0), subtype="FLOAT")
    write_wav(src / "two" / "d.wav" if os.makedirs(src / "two") is None else None, tone(0.5))
    (src / "two" / "e.wav").write_bytes((src / "two" / "d.wav").read_bytes())  # identical
    write_wav(src / "two" / "silent.wav", np.zeros(8000))
    write_wav(src / "two" / "short.wav", tone(0.05))
    write_wav(src / "two" / "nan.wav", np.full(8000, np.nan), subtype="FLOAT")
    expected_rejects.update({"two/silent.wav": "silent", "two/short.wav": "too_short",
                             "two/nan.wav": "nan_or_inf"})
    m = preprocess.run("wav-dir", str(src), str(tmp_path / "out"), SPEC)
    rejects = [json.loads(line) for line in open(tmp_path / "out" / "rejects.jsonl")]
    assert {r["path"]: r["reason"] for r in rejects} == expected_rejects
    # 15 paths (no speaker ids): split by sha1 of the path; of the good files two/e.wav is
    # in test (tests/data/test_sources.py checks the rule itself).
    assert m["counts"] == {"train": 4, "validation": 0, "test": 1}
    assert m["files"] == {"train": 4, "validation": 0, "test": 1}
    assert m["split_rule"] == {"rule": sources.HASH_SPLIT_RULE, "groups": 15,
                               "counts": {"train": 10, "validation": 2, "test": 3}}
    assert m["labels"] == ["one", "two"]
    # windows per split and label: the class map (audiogan.data.labels) derives from these
    assert m["label_counts"] == {"train": {"one": 3, "two": 1}, "validation": {},
                                 "test": {"two": 1}}
    assert m["repaired"] == {"converted_float": 1, "converted_pcm_24": 1, "mixed_to_mono": 1,
                             "padded": 4, "resampled": 1, "trimmed": 1}
    assert m["rejected"]["unreadable"] == 4 and sum(m["rejected"].values()) == len(rejects)
    assert len(m["normalisation"]["mean"]) == 128
    ex = shards.load_split(str(tmp_path / "out"), "train")
    assert ex.x.shape == (4, 1, 128, 128) and ex.keys[0] == "one/a.wav#0"
    assert shards.load_split(str(tmp_path / "out"), "test").keys == ["two/e.wav#0"]
    raw = shards.load_split(str(tmp_path / "out"), "train", scaled=False).x
    mean = raw.reshape(-1, 128).astype(np.float64).mean(0)
    np.testing.assert_allclose(m["normalisation"]["mean"], mean, rtol=1e-4, atol=1e-4)


def test_killed_run_then_rerun_identical_and_refusals(ray_cluster, midi_source, tmp_path,
                                                      monkeypatch, capsys):
    monkeypatch.setattr(preprocess, "SHARD_BYTES", 2000)  # several shards
    full = tmp_path / "full"
    m = preprocess.run("midi-dir", str(midi_source), str(full), NOTES)
    # 6 good files of 20..45 notes (file 3: two merged tracks), windows of 8 with hop 4 in
    # train, hop 8 elsewhere; by the path hash p3 and p5 are in validation
    n_notes = [(20 + 5 * i) * (2 if i == 3 else 1) for i in range(6)]
    assert m["counts"]["train"] == sum((n_notes[i] - 8) // 4 + 1 for i in (0, 1, 2, 4))
    assert m["counts"]["validation"] == sum((n_notes[i] - 8) // 8 + 1 for i in (3, 5))
    assert m["files"] == {"train": 4, "validation": 2, "test": 0}
    assert m["split_rule"]["rule"] == sources.HASH_SPLIT_RULE
    assert m["repaired"] == {"merged_tracks": 1}
    assert m["rejected"]["too_short"] == 1 and m["note_scaling"]["pitch_center"] == 64.5
    assert len(shards.shard_files(str(full))) > 1
    # a run killed mid-way: some shards, a temp file, no rejects, no manifest
    partial = tmp_path / "partial"
    os.makedirs(partial / "shards")
    first = shards.shard_files(str(full))[0]
    (partial / "shards" / "part-00000.parquet").write_bytes(open(first, "rb").read())
    (partial / "shards" / "part-00001.parquet").write_bytes(b"PAR1 half written")
    (partial / ".tmp-abcd").write_bytes(b"x")
    assert cli.main(["preprocess", "midi-dir", "--source", str(midi_source), "--out",
                     f"file://{partial}", "--window", "8", "--hop", "4"]) == 0
    assert "preprocess midi-dir:" in capsys.readouterr().out
    assert rows(partial) == rows(full)
    assert open(partial / "rejects.jsonl").read() == open(full / "rejects.jsonl").read()
    # complete output: refused without --overwrite (one line, exit 2), replaced with it
    argv = ["preprocess", "midi-dir", "--source", str(midi_source), "--out", str(full),
            "--window", "8", "--hop", "4"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert cli.main(argv + ["--overwrite"]) == 0
    assert rows(full) == rows(partial)


def test_cli_errors_one_line(ray_cluster, tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("user data")
    os.makedirs(tmp_path / "allbad")
    (tmp_path / "allbad" / "empty.wav").write_bytes(b"")
    cases = [
        ["preprocess", "midi-dir", "--source", str(tmp_path / "nope"), "--out", str(tmp_path)],
        ["preprocess", "fsdd", "--source", str(tmp_path), "--out", str(tmp_path / "o"),
         "--hop", "0"],
        ["preprocess", "bogus", "--source", "a", "--out", "b"],
        ["preprocess", "midi-dir", "--source", str(tmp_path / "empty"), "--out", str(tmp_path)],
        ["preprocess", "wav-dir", "--source", str(tmp_path / "allbad"), "--out",
         str(tmp_path / "allbad-out")],  # every file rejected: no dataset, no manifest
    ]
    os.makedirs(tmp_path / "empty")
    for argv in cases:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("audiogan: error:"), err
    assert not (tmp_path / "allbad-out" / "manifest.json").exists()
    assert (tmp_path / "allbad-out" / "rejects.jsonl").read_text().count("zero_byte") == 1
    # an --out holding files preprocess did not write is never cleared
    with pytest.raises(UserError, match="refusing to clear"):
        preprocess.prepare_out(str(tmp_path), str(tmp_path / "src"), overwrite=False)
    assert (tmp_path / "mine.txt").exists()
