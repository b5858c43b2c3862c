"""The class map of conditional training (audiogan.data.labels), from manifest counts."""

import pytest

from audiogan.config import resolve
from audiogan.data.labels import OTHER, RANKED_RULE, SORTED_RULE, LabelMap, label_map
from audiogan.errors import UserError
from audiogan.train.loop import train_loop
from audiogan.cluster.session import LocalSession
from tests.fixtures import make_dataset


def _manifest(kind, train, validation=None, test=None, dataset="maestro"):
    return {"kind": kind, "dataset": dataset,
            "label_counts": {"train": train, "validation": validation or {}, "test": test or {}}}


def test_composers_ranked_by_training_windows_name_breaks_ties_and_round_trip():
    train = {"Chopin": 500, "Bach": 300, "Alkan": 300, "Liszt": 250, "Mozart": 199, "": 7}
    # Haydn appears only in validation: `other`, even though 900 windows there.
    m = _manifest("notes", train, validation={"Haydn": 900, "Chopin": 40})
    lm = label_map(m, n_composers=3, min_class_windows=200)
    assert lm.names == ("Chopin", "Alkan", "Bach", OTHER)      # Alkan before Bach: the tie
    assert lm.train_counts == (500, 300, 300, 250 + 199 + 7)   # other: Liszt, Mozart, ""
    assert lm.rule == RANKED_RULE and lm.params == {"n_composers": 3, "min_class_windows": 200}
    assert lm.probs == pytest.approx([c / 1556 for c in lm.train_counts])
    assert lm.indices(["Bach", "Haydn", "", "Liszt", "Chopin"]).tolist() == [2, 3, 3, 3, 0]
    assert LabelMap.from_dict(lm.to_dict()) == lm
    # the cap and the floor: four reach 200 windows, Mozart (199) does not
    assert label_map(m, n_composers=8, min_class_windows=200).names == \
        ("Chopin", "Alkan", "Bach", "Liszt", OTHER)
    assert label_map(m, n_composers=8, min_class_windows=199).names[:5] == \
        ("Chopin", "Alkan", "Bach", "Liszt", "Mozart")


def test_digits_are_the_sorted_training_labels_with_other_only_when_needed():
    train = {str(d): 10 + d for d in (3, 0, 9, 1)}
    lm = label_map(_manifest("spectrogram", train, test={"0": 2}, dataset="sc09"),
                   n_composers=1, min_class_windows=10_000)   # composer keys do not apply
    assert lm.names == ("0", "1", "3", "9") and lm.rule == SORTED_RULE and OTHER not in lm.names
    # numbers are the digits themselves, not indices
    assert lm.parse("3") == [2] and lm.parse("9,0") == [3, 0] and lm.parse("0-1") == [0, 1]
    for bad in ("5", "0-9", "2"):   # absent digits (index 2 exists, digit 2 does not)
        with pytest.raises(UserError, match="no class"):
            lm.parse(bad)
    all_ten = label_map(_manifest("spectrogram", {str(d): 5 for d in range(10)}),
                        n_composers=8, min_class_windows=200)
    assert all_ten.parse("0-9") == list(range(10)) and all_ten.parse("7") == [7]
    seen_in_test_only = label_map(_manifest("spectrogram", train, test={"7": 1}),
                                  n_composers=8, min_class_windows=1)
    assert seen_in_test_only.names[-1] == OTHER and seen_in_test_only.train_counts[-1] == 0


def test_parse_labels_by_name_part_and_index():
    lm = LabelMap(("Frédéric Chopin", "Johann Sebastian Bach", "Franz Liszt", OTHER),
                  RANKED_RULE, {}, (5, 4, 3, 2))
    assert lm.parse("chopin, Bach") == [0, 1]
    assert lm.parse("2") == [2] and lm.parse("0-1") == [0, 1] and lm.parse("other") == [3]
    assert lm.parse("all") == [0, 1, 2, 3] and lm.parse(" ALL ") == [0, 1, 2, 3]
    for bad in ("Mozart", "9", "F"):   # 'F' is part of two names
        with pytest.raises(UserError, match="--labels"):
            lm.parse(bad)


@pytest.mark.parametrize("manifest, fragment", [
    (_manifest("notes", {"": 40}, dataset="midi-dir"), "midi-dir"),
    ({"kind": "spectrogram", "dataset": "sc09"}, "preprocess it again"),  # before label_counts
    (_manifest("notes", {"Chopin": 20}), "min_class_windows=200"),
    (_manifest("spectrogram", {"": 20}, dataset="wav-dir"), "no labelled training windows"),
])
def test_unconditionable_data_are_one_line_errors(manifest, fragment):
    with pytest.raises(UserError, match=fragment) as info:
        label_map(manifest, n_composers=8, min_class_windows=200, data="D")
    assert "\n" not in str(info.value)


def test_conditional_training_on_midi_dir_is_a_one_line_error(tmp_path):
    data = make_dataset(tmp_path / "midi", "notes", n_train=4, dataset="midi-dir")
    cfg = resolve("pianogan-cpu", ["model.d=2", "model.conditional=true"])
    with pytest.raises(UserError, match="midi-dir") as info:
        train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=LocalSession())
    assert "\n" not in str(info.value)


def test_audiogan_train_refuses_conditioning_without_labels_before_ray_starts(tmp_path, capsys):
    from audiogan import cli

    data = make_dataset(tmp_path / "midi", "notes", n_train=4, dataset="midi-dir")
    argv = ["train", "pianogan-cpu", "--data", data, "--out", str(tmp_path / "run"),
            "--set", "model.conditional=true"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "midi-dir" in err and not (tmp_path / "run").exists()
