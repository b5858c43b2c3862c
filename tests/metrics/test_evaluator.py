"""build_evaluator end to end on tiny synthetic datasets, with stand-in generators."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from audiogan import cli
from audiogan.classifier import load_classifier
from audiogan.config import resolve
from audiogan.data import shards
from audiogan.builders import build_evaluator


class PoolGenerator(torch.nn.Module):
    """Stand-in generator: z picks one example of a fixed pool (deterministic in z)."""

    def __init__(self, pool: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("pool", torch.as_tensor(pool))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = ((z[:, 0] + 1) / 2 * len(self.pool)).long().clamp(0, len(self.pool) - 1)
        return self.pool[idx]


@pytest.fixture(scope="module")
def classifier_dir(spec_data, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("clf"))
    assert cli.main(["classifier", "train", "--data", spec_data, "--out", out, "--epochs", "4"]) == 0
    return out


def test_classifier_trains_saves_and_loads(classifier_dir, spec_data):
    info = json.load(open(os.path.join(classifier_dir, "classifier.json")))
    assert info["labels"] == ["0", "1", "2"]
    assert info["accuracy_test"] >= 0.9
    assert info["data_manifest_hash"] == shards.manifest_hash(shards.read_manifest(spec_data))
    model, loaded = load_classifier(classifier_dir)
    assert loaded == info and not model.training


def test_spectrogram_evaluator_real_vs_collapsed(spec_data, classifier_dir):
    cfg = resolve("spectogan-cpu", {"metrics.ndb_k": 6, "metrics.n_samples": 300,
                                    "metrics.classifier": classifier_dir})
    manifest = shards.read_manifest(spec_data)
    ev = build_evaluator(cfg, spec_data, manifest)
    test = shards.load_split(spec_data, "test", manifest=manifest)
    real = ev(PoolGenerator(test.x))
    keys = {"eval/ndb", "eval/ndb_js", "eval/nn_self", "eval/nn_train", "eval/is", "eval/is_real"}
    assert set(real) == keys and set(ev.floor) == keys
    assert real["eval/ndb"] <= 0.34 and real["eval/is"] > 2.5
    assert real["eval/is_real"] == pytest.approx(ev.floor["eval/is"]) and ev.floor["eval/is"] > 2.5
    only_zero = test.x[[lab == "0" for lab in test.labels]]
    collapsed = ev(PoolGenerator(only_zero))
    assert collapsed["eval/ndb"] >= 0.6
    assert collapsed["eval/is"] < 1.2
    assert collapsed["eval/ndb_js"] > real["eval/ndb_js"]
    # Same seeds every call: same numbers.
    assert ev(PoolGenerator(test.x)) == real


def test_note_evaluator_and_missing_classifier_warning(note_data, spec_data, caplog):
    cfg = resolve("pianogan-cpu", {"metrics.ndb_k": 8, "metrics.n_samples": 400})
    manifest = shards.read_manifest(note_data)
    ev = build_evaluator(cfg, note_data, manifest)
    keys = {"eval/ndb", "eval/ndb_js", "eval/nn_self", "eval/nn_train", "eval/note_overlap"}
    val = shards.load_split(note_data, "validation", manifest=manifest).x
    real = ev(PoolGenerator(val))
    assert set(real) == keys and set(ev.floor) == keys
    # The pool is the reference split itself, resampled with replacement by the seeds.
    assert real["eval/note_overlap"] > 0.95
    assert real["eval/ndb"] <= 0.25
    assert 0.8 < ev.floor["eval/note_overlap"] < 1.0
    one_cluster = ev(PoolGenerator(val[:20]))
    assert one_cluster["eval/ndb"] >= 0.5
    assert one_cluster["eval/note_overlap"] < real["eval/note_overlap"]

    with caplog.at_level(logging.WARNING):
        spec_ev = build_evaluator(resolve("spectogan-cpu", {"metrics.ndb_k": 6,
                                                            "metrics.n_samples": 60}),
                                  spec_data, shards.read_manifest(spec_data))
    assert "eval/is omitted" in caplog.text
    assert "eval/is" not in spec_ev.floor


def test_diverged_generator_is_scored_not_crashed(note_data):
    cfg = resolve("pianogan-cpu", {"metrics.ndb_k": 4, "metrics.n_samples": 20})
    ev = build_evaluator(cfg, note_data, shards.read_manifest(note_data))

    class NaNGenerator(torch.nn.Module):
        def forward(self, z):
            return torch.full((len(z), 3, 256), float("nan"))

    out = ev(NaNGenerator())
    assert out["eval/ndb"] >= 0.5 and out["eval/nn_self"] == 0.0
