import argparse
import json

import pytest

from audiogan.bench import preprocess as bench_pre


@pytest.mark.slow
@pytest.mark.ray
def test_quick_bench_three_modes_identical(ray_cluster, tmp_path):
    path = bench_pre.run(argparse.Namespace(out=str(tmp_path), quick=True, source=None))
    result = json.load(open(path))
    assert set(result["datasets"]) == {"quick-midi", "quick-wav"}
    assert result["targets"] == bench_pre.TARGETS   # the results table reads them from here
    for d in result["datasets"].values():
        assert d["outputs_identical"] and set(d["files_per_s"]) == {"loop", "pool2", "ray_data"}
        assert d["preprocess_memory"]["x4"]["files"] == 4 * d["files"]


def test_repeat_items_keys_unique():
    items = [{"key": "a.wav", "path": "/x/a.wav", "split": "train", "label": ""}]
    keys = [i["key"] for i in bench_pre.repeat_items(items, 4)]
    assert len(set(keys)) == 4 and keys[0] == "copy0/a.wav"
