"""Names that come from data never move a write outside the chosen output directory.

REST calls without the dashboard token and code-running pickles in checkpoints are
tests/cluster/test_security.py's and tests/train/test_checkpoint_local.py's (referenced in
results/reliability.md)."""

from __future__ import annotations

import json
import os

import pytest

from audiogan import cli
from audiogan.data import shards
from tests.data.data_fixtures import piano_midi, write_midi

pytestmark = pytest.mark.ray


def snapshot(root, skip) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.abspath(dirpath).startswith(os.path.abspath(skip)):
            continue
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.path.abspath(p) == os.path.abspath(skip):
                continue
            st = os.lstat(p)
            # files: content stamp; directories: existence (adding --out touches its parent)
            out[p] = (st.st_size, st.st_mtime_ns) if n in filenames else "dir"

    return out


def test_maestro_names_and_links_cannot_escape(ray_cluster, tmp_path, capsys):
    src = tmp_path / "box" / "maestro"
    os.makedirs(src / "2004")
    write_midi(src / "2004" / "a.midi", piano_midi(20, seed=1))
    write_midi(src / "2004" / "we\nird #0.midi", piano_midi(20, seed=2))
    os.makedirs(tmp_path / "outside")
    write_midi(tmp_path / "evil.mid", piano_midi(20, seed=3))        # exists where ../.. points
    write_midi(tmp_path / "outside" / "o.mid", piano_midi(20, seed=4))
    os.symlink(tmp_path / "outside" / "o.mid", src / "2004" / "link.midi")
    os.symlink(tmp_path / "outside", src / "2004" / "dirlink")
    (src / "maestro-v3.0.0.csv").write_text(
        "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\n"
        "X,Y,train,2004,2004/a.midi,a.wav,1\n"
        'X,Y,train,2004,"2004/we\nird #0.midi",a.wav,1\n'
        "X,Y,train,2004,../../evil.mid,a.wav,1\n"
        "X,Y,test,2004,2004/../../../evil.mid,a.wav,1\n"
        "X,Y,train,2004,/etc/passwd,a.wav,1\n"
        "X,Y,validation,2004,2004/link.midi,a.wav,1\n"
        "X,Y,train,2004,2004/dirlink/o.mid,a.wav,1\n")
    out = tmp_path / "box" / "out"
    before = snapshot(tmp_path, out)
    rc = cli.main(["preprocess", "maestro", "--source", str(src), "--out", str(out),
                   "--window", "8", "--hop", "4"])
    assert rc == 0
    assert snapshot(tmp_path, out) == before               # nothing written outside --out
    assert sorted(os.listdir(out)) == ["manifest.json", "rejects.jsonl", "shards"]
    assert all(f.startswith("part-") for f in os.listdir(out / "shards"))
    rejects = {json.loads(x)["path"]: json.loads(x)["reason"] for x in open(out / "rejects.jsonl")}
    assert rejects == {"../../evil.mid": "unsafe_path", "2004/../../../evil.mid": "unsafe_path",
                       "/etc/passwd": "unsafe_path"}
    keys = {k.rsplit("#", 1)[0] for k in shards.load_split(str(out), "train").keys}
    assert "2004/we\nird #0.midi" in keys                   # odd names are only data


def test_sweep_name_cannot_leave_storage(tmp_path, capsys):
    from tests.sweep.conftest import SMOKE

    for name in ("../escape", "a/b", ".."):
        rc = cli.main(["sweep", SMOKE, "--data", str(tmp_path), "--storage",
                       str(tmp_path / "sweeps"), "--name", name])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "plain name" in err
    assert not (tmp_path / "escape").exists() and not (tmp_path / "sweeps").exists()
