"""build_evaluator end to end on tiny synthetic datasets, with stand-in generators."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from audiogan import cli
from audiogan.builders import build_evaluator
from audiogan.classifier import load_classifier
from audiogan.config import resolve
from audiogan.data import shards
from audiogan.metrics import note_stats
from tests.metrics.conftest import spec_examples, write_dataset


class PoolGenerator(torch.nn.Module):
    """Stand-in generator: z picks one example of a fixed pool (deterministic in z)."""

    def __init__(self, pool: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("pool", torch.as_tensor(pool))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = ((z[:, 0] + 1) / 2 * len(self.pool)).long().clamp(0, len(self.pool) - 1)
        return self.pool[idx]


def test_classifier_trains_saves_and_loads(classifier_dir, spec_data, capsys):
    info = json.load(open(os.path.join(classifier_dir, "classifier.json")))
    assert info["labels"] == ["0", "1", "2"]
    assert info["accuracy_test"] >= 0.9 and info["accuracy_test_round_trip"] >= 0.9
    assert info["accuracy_validation_round_trip"] >= 0.9
    assert info["round_trip"]["griffin_lim_iters"] == 16 and info["augment"]["level_db"] == 12
    assert info["data_manifest_hash"] == shards.manifest_hash(shards.read_manifest(spec_data))
    model, loaded = load_classifier(classifier_dir)
    assert loaded == info and not model.training
    assert cli.main(["classifier", "evaluate", "--classifier", classifier_dir,
                     "--data", spec_data]) == 0
    out = capsys.readouterr().out
    assert f"round trip {info['accuracy_test_round_trip']:.4f}" in out and "peak" in out


def test_leave_one_speaker_out(tmp_path, spec_data, capsys):
    from audiogan.classifier import load_dataset
    from audiogan.classifier_cli import leave_one_speaker_out

    rng = np.random.default_rng(2)
    parts, names = {}, {}
    for split, takes in (("train", range(10, 16)), ("validation", range(5, 7)),
                         ("test", range(0, 2))):
        rows = [(c, spk, t) for spk in ("ann", "bob") for c in range(3) for t in takes]
        parts[split] = (spec_examples([c for c, _, _ in rows], rng), [str(c) for c, _, _ in rows])
        names[split] = [f"{c}_{spk}_{t}.wav" for c, spk, t in rows]
    data = str(tmp_path / "spk")
    write_dataset(data, "spectrogram", parts, names)
    # Small epochs keep it quick; the command runs the same function after its own training.
    loso = leave_one_speaker_out(load_dataset(data), epochs=2, min_epoch=64)
    assert set(loso["folds"]) == {"ann", "bob"}
    # Each fold trains on the other speaker's 18 training clips, tests on all 30 of its own.
    assert all(f["n"] == 30 and f["n_train"] == 18 for f in loso["folds"].values())
    assert loso["mean_round_trip"] == pytest.approx(
        np.mean([f["round_trip"] for f in loso["folds"].values()]))
    # File names without a speaker id: one line before any training.
    out = str(tmp_path / "clf")
    assert cli.main(["classifier", "train", "--data", spec_data, "--out", out,
                     "--leave-one-speaker-out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a speaker id" in err[0]


def test_spectrogram_evaluator_real_vs_collapsed(spec_data, classifier_dir):
    cfg = resolve("spectogan-cpu", {"metrics.ndb_k": 6, "metrics.n_samples": 300,
                                    "metrics.classifier": classifier_dir})
    manifest = shards.read_manifest(spec_data)
    ev = build_evaluator(cfg, spec_data, manifest)
    test = shards.load_split(spec_data, "test", manifest=manifest)
    real = ev(PoolGenerator(test.x))
    keys = {"eval/ndb", "eval/ndb_js", "eval/nn_self", "eval/nn_train", "eval/is", "eval/is_real"}
    # The floor (real clips with their labels) also has the classifier's accuracy.
    cond = {"eval/cond_acc", "eval/cond_acc/0", "eval/cond_acc/1", "eval/cond_acc/2"}
    assert set(real) == keys and set(ev.floor) == keys | cond
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
    keys = {"eval/ndb", "eval/ndb_js", "eval/nn_self", "eval/nn_train", "eval/note_overlap",
            "eval/pc_entropy", "eval/pc_entropy_gap"}
    val = shards.load_split(note_data, "validation", manifest=manifest).x
    real = ev(PoolGenerator(val))
    assert set(real) == keys and set(ev.floor) == keys
    # The pool is the reference split itself, resampled with replacement by the seeds.
    assert real["eval/note_overlap"] > 0.95
    assert real["eval/ndb"] <= 0.25
    assert 0.8 < ev.floor["eval/note_overlap"] < 1.0
    # Pitch-class entropy: the pool is the validation split, whose value is the reference,
    # so the gap is small; the floor shows the test split's value beside it.
    assert 0.0 < real["eval/pc_entropy"] < np.log2(12)
    assert real["eval/pc_entropy_gap"] < 0.05
    assert ev.floor["eval/pc_entropy"] == pytest.approx(note_stats.pitch_class_entropy(
        shards.load_split(note_data, "test", scaled=False, manifest=manifest).x))
    assert ev.floor["eval/pc_entropy_gap"] == pytest.approx(
        abs(ev.floor["eval/pc_entropy"] - ev.pc_entropy_ref))
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


class LabelGenerator(torch.nn.Module):
    """Stand-in conditional generator (`n_classes`, `forward(z, labels)`): z picks one real
    example of the requested label (`follow`) or of the whole pool (ignoring the label)."""

    def __init__(self, pool: np.ndarray, pool_labels: list[str], names: list[str],
                 follow: bool = True) -> None:
        super().__init__()
        self.n_classes, self.follow = len(names), follow
        self.register_buffer("pool", torch.as_tensor(pool))
        self.by_class = [torch.tensor([i for i, lab in enumerate(pool_labels) if lab == name])
                         for name in names]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        u = (z[:, 0] + 1) / 2
        if not self.follow:
            return self.pool[(u * len(self.pool)).long().clamp(0, len(self.pool) - 1)]
        rows = [self.by_class[int(c)][min(int(ui * len(self.by_class[int(c)])),
                                          len(self.by_class[int(c)]) - 1)]
                for ui, c in zip(u, labels)]
        return self.pool[torch.stack(rows)]


@pytest.fixture(scope="module")
def spec_evaluator(spec_data, classifier_dir):
    """The evaluator of a conditional run: its label map (three balanced digit classes)
    gives the requested labels."""
    from audiogan.metrics.evaluator import build_evaluator as build

    manifest = shards.read_manifest(spec_data)
    ev = build(spec_data, manifest, n_samples=150, ndb_k=6, eval_seed=1_000_000,
               latent_dim=100, classifier=classifier_dir, label_probs=[1 / 3] * 3,
               label_names=["0", "1", "2"])
    return ev, shards.load_split(spec_data, "test", manifest=manifest)


def test_cond_acc_follows_the_requested_label_and_is_the_floor_for_real_examples(
        spec_evaluator):
    ev, test = spec_evaluator
    names = ["0", "1", "2"]
    per_label = {f"eval/cond_acc/{n}" for n in names}
    assert ev.label_names == names and {"eval/cond_acc", *per_label} <= set(ev.floor)
    assert ev.floor["eval/cond_acc"] >= 0.9
    # Requested labels: drawn per seed from the (balanced) training frequencies.
    assert sorted(set(ev.labels.tolist())) == [0, 1, 2]
    assert np.bincount(ev.labels).min() > 0.2 * len(ev.labels)
    following = ev(LabelGenerator(test.x, test.labels, names, follow=True))
    ignoring = ev(LabelGenerator(test.x, test.labels, names, follow=False))
    assert {"eval/cond_acc", *per_label} <= set(following)
    assert following["eval/cond_acc"] == pytest.approx(ev.floor["eval/cond_acc"], abs=0.08)
    assert all(following[k] >= 0.75 for k in per_label)
    assert ignoring["eval/cond_acc"] == pytest.approx(1 / 3, abs=0.12)
    # An unconditional generator has no eval/cond_acc.
    assert not any(k.startswith("eval/cond_acc") for k in ev(PoolGenerator(test.x)))


def test_listening_metrics_are_computed_after_the_round_trip(spec_evaluator):
    """A spectrogram that cannot survive inversion: each real example's background turned
    into a 1-pixel loud/silent checkerboard. Seen directly it still shows its band; heard,
    the loud half of the checkerboard fills the background and the band is lost."""
    from audiogan.metrics import inception

    ev, test = spec_evaluator
    names = ["0", "1", "2"]
    x = test.x.copy()
    loud = float(np.percentile(x, 99))
    checker = ((np.arange(128)[:, None] + np.arange(128)[None, :]) % 2).astype(bool)
    background = x < loud - 0.3
    x[background & checker] = loud
    x[background & ~checker] = -1.0
    gen = LabelGenerator(x, test.labels, names)
    heard = ev(gen)
    seen_probs = inception.class_probabilities(ev.classifier, ev.generate(gen))
    seen_acc = float(np.mean([names[i] == names[r] for i, r in
                              zip(seen_probs.argmax(1).tolist(), ev.labels.tolist())]))
    seen_is = inception.inception_score_from_probs(seen_probs)
    assert heard["eval/cond_acc"] < seen_acc - 0.2
    assert heard["eval/is"] < seen_is - 0.3


def test_bootstrap_pieces_reproduce_the_listening_metrics(spec_evaluator):
    """The final evaluation's bootstrap recomputes eval/is and eval/cond_acc (per label too)
    from per-example pieces: with every weight 1 they are the evaluator's own scores."""
    from audiogan.metrics import intervals, roundtrip

    ev, test = spec_evaluator
    heard = roundtrip.round_trip(test.x, ev.manifest, n_iter=ev.griffin_lim_iters)
    scores = ev.score(test.x, labels=list(test.labels), heard=heard)
    pieces = intervals.pieces(ev, test.x, list(test.labels), heard=heard)
    ones = intervals.statistics(ev, pieces, np.ones((1, len(test.x))))
    assert {"eval/is", "eval/cond_acc", "eval/cond_acc/2"} <= set(ones)
    assert set(ones) == set(scores) - {"eval/is_real"}
    for key, value in ones.items():
        assert value[0] == pytest.approx(scores[key], rel=1e-6), key


def test_final_evaluation_hears_as_the_evaluator_does(spec_evaluator):
    """The final evaluation's pieces (`intervals.pieces` without a precomputed round trip)
    use the evaluator's own Griffin-Lim settings, the ones its real floor was heard with:
    with momentum 0.99 their scores are those of the momentum-0.99 round trip."""
    import copy

    from audiogan.metrics import intervals, roundtrip

    ev, test = spec_evaluator
    ev = copy.copy(ev)
    ev.griffin_lim_momentum = 0.99
    heard = roundtrip.round_trip(test.x, ev.manifest, n_iter=ev.griffin_lim_iters,
                                 momentum=0.99)
    np.testing.assert_array_equal(ev.heard(test.x), heard)
    scores = ev.score(test.x, labels=list(test.labels), heard=heard)
    pieces = intervals.pieces(ev, test.x, list(test.labels))
    ones = intervals.statistics(ev, pieces, np.ones((1, len(test.x))))
    for key in ("eval/is", "eval/cond_acc"):
        assert ones[key][0] == pytest.approx(scores[key], rel=1e-6), key
