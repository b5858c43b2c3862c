"""The metric registry and everything that reads it: the evaluator's keys, `evaluate`'s
table, sweep specs, config validation and the CLI's one-line errors."""

from __future__ import annotations

import pytest

from audiogan import cli
from audiogan.builders import build_evaluator, check_objective_available
from audiogan.config import resolve
from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.metrics import registry
from audiogan.sweep.spec import parse_spec


def test_every_metric_has_a_direction_family_and_compute():
    for m in registry.METRICS.values():
        assert m.name.startswith("eval/") and m.direction in registry.DIRECTIONS
        # "match" (closer to the real value) marks a reference, never an objective.
        assert m.direction in registry.MODES or not m.objective
        assert m.families and set(m.families) <= set(registry.FAMILIES)
        assert callable(m.compute)
    names = {m.name for m in registry.for_family("pianogan")}
    assert "eval/note_overlap" in names and "eval/is" not in names
    assert {m.name for m in registry.for_family("spectogan", ())} == {
        "eval/ndb", "eval/ndb_js", "eval/nn_self", "eval/nn_train"}


def test_evaluator_computes_exactly_the_registry_metrics(note_data):
    cfg = resolve("pianogan-cpu", {"metrics.ndb_k": 4, "metrics.n_samples": 16, "model.d": 2})
    manifest = shards.read_manifest(note_data)
    ev = build_evaluator(cfg, note_data, manifest)
    assert set(ev.floor) == {m.name for m in registry.for_family("pianogan")}


def test_test_split_is_loaded_once_when_the_evaluator_is_built(spec_data, monkeypatch):
    calls = []
    real = shards.load_split

    def counting(data, split, *args, **kwargs):
        calls.append(split)
        return real(data, split, *args, **kwargs)

    monkeypatch.setattr(shards, "load_split", counting)
    cfg = resolve("spectogan-cpu", {"metrics.ndb_k": 4, "metrics.n_samples": 16})
    build_evaluator(cfg, spec_data, shards.read_manifest(spec_data))
    assert calls.count("test") == 1, calls


def test_new_quality_metrics_rows_and_per_label_keys():
    assert registry.check_objective("eval/cond_acc", "max", "spectogan") == "max"
    assert registry.check_objective("eval/pc_entropy_gap", "", "pianogan") == "min"
    with pytest.raises(UserError, match="better when higher"):
        registry.check_objective("eval/cond_acc", "min")
    with pytest.raises(UserError, match="one label's share of 'eval/cond_acc'"):
        registry.check_objective("eval/cond_acc/3")
    with pytest.raises(UserError, match="reference value"):
        registry.check_objective("eval/pc_entropy")
    assert registry.metric_of("eval/cond_acc/3") is registry.get("eval/cond_acc")
    assert registry.metric_of("eval/pc_entropy").better == "closer to real"
    with pytest.raises(UserError, match="unknown metric"):
        registry.metric_of("eval/ndb/3")
    # eval/cond_acc needs a classifier and requested labels: not without them.
    assert "eval/cond_acc" not in {m.name for m in registry.for_family("spectogan",
                                                                       ("classifier",))}


def test_cond_acc_objective_needs_a_classifier_and_a_conditional_generator(spec_data,
                                                                          classifier_dir):
    cfg = resolve("spectogan-cpu", {"train.objective": "eval/cond_acc"})
    with pytest.raises(UserError, match="needs the digit classifier"):
        check_objective_available(cfg, spec_data)
    cfg = resolve("spectogan-cpu", {"train.objective": "eval/cond_acc",
                                    "metrics.classifier": classifier_dir})
    with pytest.raises(UserError, match="needs a conditional generator"):
        check_objective_available(cfg, spec_data)


def test_evaluate_table_reads_per_label_keys():
    from audiogan.evaluate import table

    result = {"family": "spectogan", "step": 1, "n_samples": 10, "ndb_k": 2,
              "seconds": {"evaluate": 0.1}, "floor_split": "test",
              "metrics": {"eval/cond_acc": 0.5, "eval/cond_acc/3": 0.25},
              "floor": {"eval/cond_acc": 0.9, "eval/cond_acc/3": 1.0}}
    lines = table(result).splitlines()
    assert any(line.startswith("eval/cond_acc/3") and "higher" in line for line in lines)


@pytest.mark.parametrize("extra, message", [
    ({"metric": "eval/ndbb"}, "unknown metric 'eval/ndbb'"),
    ({"metric": "eval/is"}, "'eval/is' is a spectogan metric"),
    ({"metric": "eval/ndb", "mode": "max"}, "better when lower"),
    ({"metric": "eval/is_real"}, "reference value"),
    ({"metric": "eval/cond_acc"}, "'eval/cond_acc' is a spectogan metric"),
    ({"metric": "eval/pc_entropy"}, "reference value"),
])
def test_sweep_spec_objective_errors(extra, message):
    raw = {"base": "pianogan-cpu", "search": {"optim.lr_g": {"type": "loguniform",
                                                             "low": 1e-5, "high": 1e-3}}, **extra}
    with pytest.raises(UserError, match=message):
        parse_spec(raw)


def test_sweep_spec_mode_defaults_to_the_metric_direction():
    raw = {"base": "pianogan-cpu", "metric": "eval/note_overlap",
           "search": {"optim.lr_g": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}}
    assert parse_spec(raw).mode == "max"


def test_cli_typo_in_objective_is_one_line_before_anything_starts(capsys):
    rc = cli.main(["train", "pianogan-cpu", "--dry-run", "--set", "train.objective=eval/nbd"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "unknown metric 'eval/nbd'" in err[0]


def test_objective_needing_a_missing_classifier_fails_before_training(spec_data, tmp_path):
    cfg = resolve("spectogan-cpu", {"train.objective": "eval/is"})
    with pytest.raises(UserError, match="needs the digit classifier"):
        check_objective_available(cfg, spec_data)
    check_objective_available(resolve("spectogan-cpu"), spec_data)  # eval/ndb needs none


def test_building_the_parser_looks_up_no_command_module(monkeypatch):
    import importlib.util

    def refuse(*args, **kwargs):
        raise AssertionError("the parser looked a command module up")

    monkeypatch.setattr(importlib.util, "find_spec", refuse)
    parser = cli.build_parser()
    assert set(cli.MODULES) >= {"train", "sweep", "best", "sample", "evaluate", "bench"}
    assert parser.parse_args(["best", "x", "--out", "y"]).command == "best"
