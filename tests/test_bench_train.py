"""`audiogan bench train`'s options for part `full`: checked before anything runs, and a
run on some presets keeps the others' rows with the date and matmul rate they had."""

from __future__ import annotations

import argparse
import json

import pytest

from audiogan.bench import train
from audiogan.errors import UserError


def _args(tmp_path, **kw) -> argparse.Namespace:
    return argparse.Namespace(out=str(tmp_path), quick=False, **kw)


@pytest.mark.parametrize("kw, message", [
    ({"presets": "spectogan", "pairs": None, "parts": "gap"}, "belong to part 'full'"),
    ({"presets": None, "pairs": 3, "parts": "full"}, "--pairs must be even and >= 2"),
    ({"presets": None, "pairs": 0, "parts": "full"}, "--pairs must be even and >= 2"),
    ({"presets": "spectogan,wavegan", "pairs": None, "parts": "full"},
     "unknown full preset 'wavegan'"),
])
def test_bad_full_options_are_one_line_errors(tmp_path, kw, message):
    args = _args(tmp_path, **kw)
    with pytest.raises(UserError, match=message):
        train._full_presets(args, train._parts(args.parts))


def test_full_presets_default_to_both_in_order(tmp_path):
    args = _args(tmp_path, presets=None, pairs=None, parts="full")
    assert train._full_presets(args, ["full"]) == ("spectogan", "pianogan")
    args = _args(tmp_path, presets=" pianogan ", pairs=6, parts="full")
    assert train._full_presets(args, ["full"]) == ("pianogan",)


def test_a_rerun_preset_replaces_its_row_and_keeps_the_others(tmp_path):
    old_mm = {"n": 2048, "threads": 2, "gflop_s": 190.0}
    (tmp_path / "train.json").write_text(json.dumps({
        "quick": False, "date": "2026-12-01", "dates": {"full_presets": "2026-11-30"},
        "full_presets": {"matmul": old_mm, "spectogan": {"plain_s_per_step": 50.0},
                         "pianogan": {"plain_s_per_step": 2.0}}}))
    new = {"matmul": {"n": 2048, "threads": 2, "gflop_s": 210.0},
           "spectogan": {"plain_s_per_step": 55.0}}
    got = train._keep_other_presets(_args(tmp_path), new, quick=False)
    assert got["spectogan"]["plain_s_per_step"] == 55.0 and "matmul" not in got["spectogan"]
    assert got["spectogan"]["date"] != "2026-11-30"
    assert got["pianogan"] == {"plain_s_per_step": 2.0, "date": "2026-11-30",
                               "matmul": old_mm}
    # A --quick run never takes a real run's rows, nor the reverse.
    quick = train._keep_other_presets(_args(tmp_path), {"spectogan": {}}, quick=True)
    assert "pianogan" not in quick
