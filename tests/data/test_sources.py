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
        "Frédéric Chopin,Y,train,2004,2004/a.midi,2004/a.wav,1\n"
        " Franz Liszt ,Y,test,2006,2006/b.midi,2006/b.wav,1\n"
        "X,Y,train,2006,../../etc/passwd,a.wav,1\n"
        "X,Y,validation,2006,/abs/c.midi,a.wav,1\n")
    items = sources.list_items("maestro", str(tmp_path))
    got = {i["key"]: (i["split"], i["reject"]) for i in items}
    assert got["2004/a.midi"] == ("train", "") and got["2006/b.midi"] == ("test", "")
    assert got["../../etc/passwd"] == ("train", "unsafe_path")
    assert got["/abs/c.midi"] == ("validation", "unsafe_path")
    # canonical_composer is the label (stripped): PianoGAN's classes come from it
    labels = {i["key"]: i["label"] for i in items}
    assert labels["2004/a.midi"] == "Frédéric Chopin" and labels["2006/b.midi"] == "Franz Liszt"
    assert all(i["path"].startswith(str(tmp_path)) for i in items if not i["reject"])


def test_wav_dir_labels_and_midi_dir(tmp_path):
    touch(tmp_path, "dog/a.wav", "cat/sub/b.wav", "c.wav", "x.mid", "d/y.midi")
    got = {i["key"]: i["label"] for i in sources.list_items("wav-dir", str(tmp_path))}
    assert got == {"dog/a.wav": "dog", "cat/sub/b.wav": "sub", "c.wav": ""}
    assert [i["key"] for i in sources.list_items("midi-dir", str(tmp_path))] == ["d/y.midi",
                                                                                 "x.mid"]


def _which_set(name):
    """Speech Commands' which_set percentages, written out independently."""
    import hashlib

    h = int(hashlib.sha1(name.encode()).hexdigest(), 16)
    pct = (h % 2 ** 27) * (100.0 / (2 ** 27 - 1))
    return "validation" if pct < 10 else "test" if pct < 20 else "train"


@pytest.mark.parametrize("kind, ext", [("midi-dir", ".mid"), ("wav-dir", ".wav")])
def test_dir_sources_split_80_10_10_by_path_hash(tmp_path, kind, ext):
    names = [f"{folder}/piece {i:03d}{ext}" for folder in ("a", "b/c") for i in range(200)]
    touch(tmp_path, *names)
    items = sources.list_items(kind, str(tmp_path))
    assert items == sources.list_items(kind, str(tmp_path))          # deterministic
    got = {i["key"]: i["split"] for i in items}
    assert got == {n: _which_set(n) for n in names}                  # sha1 of the relative path
    share = collections.Counter(got.values())
    assert 20 <= share["validation"] <= 60 and 20 <= share["test"] <= 60   # 10% of 400 = 40
    assert share["train"] == 400 - share["validation"] - share["test"]
    rule = sources.split_rule(kind, items)
    assert rule["rule"] == sources.HASH_SPLIT_RULE and rule["groups"] == 400
    assert rule["counts"] == {s: share[s] for s in ("train", "validation", "test")}


def test_dir_sources_keep_a_speaker_in_one_split(tmp_path):
    # FSDD names (DIGIT_SPEAKER_TAKE) and Speech Commands names (SPEAKER_nohash_N, one
    # speaker in several word folders; WaveGAN's Label_SPEAKER_nohash_N too).
    fsdd = [f"{d}/{d}_spk{s:02d}_{t}.wav" for s in range(40) for d in (1, 7) for t in range(5)]
    sc = [f"{w}/{s:08x}_nohash_{n}.wav" for s in range(0, 400, 7) for w in ("five", "six")
          for n in range(2)] + [f"extra/Five_{s:08x}_nohash_9.wav" for s in range(0, 400, 7)]
    touch(tmp_path, *fsdd, *sc)
    items = sources.list_items("wav-dir", str(tmp_path))
    split_of: dict[str, set] = collections.defaultdict(set)
    for it in items:
        kind, speaker = sources.split_group(it["key"])
        assert kind == "speaker"
        split_of[speaker].add(it["split"])
    assert len(split_of) == 40 + len(range(0, 400, 7))
    assert all(len(s) == 1 for s in split_of.values())              # one split per speaker
    assert {next(iter(s)) for s in split_of.values()} == {"train", "validation", "test"}
    got = {i["key"]: i["split"] for i in items}
    assert got["1/1_spk03_0.wav"] == _which_set("spk03")
    # A Speech Commands clip lands where Speech Commands' own hash puts its speaker.
    assert got["six/0000001c_nohash_1.wav"] == sources.speech_commands_split("0000001c_nohash_1.wav")
    assert got["extra/Five_0000001c_nohash_9.wav"] == got["five/0000001c_nohash_0.wav"]
    rule = sources.split_rule("wav-dir", items)
    assert rule["groups"] == len(split_of) and sum(rule["counts"].values()) == len(items)


def test_dir_sources_too_few_groups_stay_in_train(tmp_path):
    touch(tmp_path, *[f"x/{i}_alice_{t}.wav" for i in range(3) for t in range(5)],
          *[f"y/clip{i}.wav" for i in range(8)])                      # 1 speaker + 8 paths
    items = sources.list_items("wav-dir", str(tmp_path))
    assert {i["split"] for i in items} == {"train"}
    rule = sources.split_rule("wav-dir", items)
    assert rule == {"rule": sources.SMALL_SPLIT_RULE, "groups": 9,
                    "counts": {"train": 23, "validation": 0, "test": 0}}
    assert sources.split_rule("fsdd", items) is None                  # fsdd splits by take
