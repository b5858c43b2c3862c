import collections
import os

import pytest

from audiogan.data import sources
from audiogan.errors import UserError


def touch(root, *names):
    for n in names:
        p = os.path.join(root, n)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "wb").close()


def test_sc09_wavegan_layout(tmp_path):
    touch(tmp_path, "train/Eight_abc_nohash_0.wav", "valid/Zero_abc_nohash_1.wav",
          "test/Nine_def_nohash_0.wav", "train/Yes_abc_nohash_0.wav")
    assert sources.sc09_layout(str(tmp_path)) == "wavegan"
    items = {i["key"]: i for i in sources.list_items("sc09", str(tmp_path))}
    assert (items["train/Eight_abc_nohash_0.wav"]["label"],
            items["train/Eight_abc_nohash_0.wav"]["split"]) == ("8", "train")
    assert items["valid/Zero_abc_nohash_1.wav"]["split"] == "validation"
    assert items["test/Nine_def_nohash_0.wav"]["split"] == "test"
    assert items["train/Yes_abc_nohash_0.wav"]["reject"] == "unknown_label"


def test_sc09_speech_commands_layout_with_lists(tmp_path):
    touch(tmp_path, "zero/aaa_nohash_0.wav", "one/bbb_nohash_0.wav", "two/ccc_nohash_0.wav",
          "yes/ddd_nohash_0.wav", "_background_noise_/noise.wav")
    (tmp_path / "validation_list.txt").write_text("one/bbb_nohash_0.wav\nyes/ddd_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("two/ccc_nohash_0.wav\n")
    assert sources.sc09_layout(str(tmp_path)) == "speech_commands"
    items = sources.list_items("sc09", str(tmp_path))
    assert [(i["key"], i["split"], i["label"]) for i in items] == [
        ("one/bbb_nohash_0.wav", "validation", "1"), ("two/ccc_nohash_0.wav", "test", "2"),
        ("zero/aaa_nohash_0.wav", "train", "0")]


def test_sc09_speech_commands_hash_split(tmp_path):
    speakers = [f"{i:08x}" for i in range(300)]
    touch(tmp_path, *[f"five/{s}_nohash_0.wav" for s in speakers], "six/00000000_nohash_3.wav")
    items = sources.list_items("sc09", str(tmp_path))
    by_key = {i["key"]: i["split"] for i in items}
    # a speaker lands in the same split in every folder (the point of hashing the speaker)
    assert by_key["six/00000000_nohash_3.wav"] == by_key["five/00000000_nohash_0.wav"]
    share = collections.Counter(by_key.values())
    assert 15 <= share["validation"] <= 50 and 15 <= share["test"] <= 50
    # Speech Commands' which_set, computed independently
    import hashlib
    import re
    h = int(hashlib.sha1(b"0000002a").hexdigest(), 16)
    pct = (h % 2 ** 27) * (100.0 / (2 ** 27 - 1))
    want = "validation" if pct < 10 else "test" if pct < 20 else "train"
    assert sources.speech_commands_split("0000002a_nohash_4.wav") == want
    assert re.sub(r"_nohash_.*$", "", "0000002a_nohash_4.wav") == "0000002a"


def test_sc09_unknown_layout(tmp_path):
    touch(tmp_path, "x/a.wav")
    with pytest.raises(UserError):
        sources.list_items("sc09", str(tmp_path))


def test_fsdd_split_by_take(tmp_path):
    touch(tmp_path, "3_jackson_0.wav", "3_jackson_4.wav", "3_jackson_5.wav", "3_jackson_9.wav",
          "3_jackson_10.wav", "7_george_49.wav", "README.wav")
    got = {i["key"]: (i["split"], i["label"], i["reject"])
           for i in sources.list_items("fsdd", str(tmp_path))}
    assert got == {"3_jackson_0.wav": ("test", "3", ""), "3_jackson_4.wav": ("test", "3", ""),
                   "3_jackson_5.wav": ("validation", "3", ""),
                   "3_jackson_9.wav": ("validation", "3", ""),
                   "3_jackson_10.wav": ("train", "3", ""), "7_george_49.wav": ("train", "7", ""),
                   "README.wav": ("train", "", "bad_name")}


def test_maestro_csv_and_unsafe_names(tmp_path):
    touch(tmp_path, "2004/a.midi", "2006/b.midi")
    (tmp_path / "maestro-v3.0.0.csv").write_text(
        "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\n"
        "X,Y,train,2004,2004/a.midi,2004/a.wav,1\n"
        "X,Y,test,2006,2006/b.midi,2006/b.wav,1\n"
        "X,Y,train,2006,../../etc/passwd,a.wav,1\n"
        "X,Y,validation,2006,/abs/c.midi,a.wav,1\n")
    items = sources.list_items("maestro", str(tmp_path))
    got = {i["key"]: (i["split"], i["reject"]) for i in items}
    assert got["2004/a.midi"] == ("train", "") and got["2006/b.midi"] == ("test", "")
    assert got["../../etc/passwd"] == ("train", "unsafe_path")
    assert got["/abs/c.midi"] == ("validation", "unsafe_path")
    assert all(i["path"].startswith(str(tmp_path)) for i in items if not i["reject"])


def test_wav_dir_labels_and_midi_dir(tmp_path):
    touch(tmp_path, "dog/a.wav", "cat/sub/b.wav", "c.wav", "x.mid", "d/y.midi")
    got = {i["key"]: i["label"] for i in sources.list_items("wav-dir", str(tmp_path))}
    assert got == {"dog/a.wav": "dog", "cat/sub/b.wav": "sub", "c.wav": ""}
    assert [i["key"] for i in sources.list_items("midi-dir", str(tmp_path))] == ["d/y.midi",
                                                                                 "x.mid"]
