"""The sweep YAML's new vocabulary without Ray: objectives and the selection rule, Pareto
fronts, conditional (define-by-run) search spaces, the paper's baseline, the final:
section and the Optuna seed derived from the sweep name."""

from __future__ import annotations

import optuna
import pytest
import yaml

from audiogan.cli import main
from audiogan.errors import UserError
from audiogan.sweep.objectives import Objective, Selection, pareto_front, rank, select
from audiogan.sweep.space import SearchSpace, active
from audiogan.sweep.spec import baseline_point, derived_seed, parse_spec, trial_config
from tests.sweep.conftest import SMOKE

LR = {"type": "loguniform", "low": 1e-5, "high": 1e-3}
RECIPE_SEARCH = {
    "optim.lr_g": LR,
    "model.upsample": {"type": "choice", "values": ["transpose", "nearest"]},
    "train.ema_decay": {"type": "choice", "values": [0.0, 0.999]},
    "train.augment": {"type": "choice", "values": ["", "shift,cutout"]},
    "loss.kind": {"type": "choice", "values": ["wgan-gp", "r1"]},
    "loss.gp_weight": {"type": "loguniform", "low": 1, "high": 100, "when": {"loss.kind": "wgan-gp"}},
    "loss.r1_weight": {"type": "loguniform", "low": 0.1, "high": 10, "when": {"loss.kind": "r1"}},
}
MIN, MAX = Objective("a", "min"), Objective("b", "max")


def _raw(**extra):
    return {"base": "pianogan-cpu", "search": dict(RECIPE_SEARCH), **extra}


def test_pareto_front_and_selection_rules():
    vs = [{"a": 0.30, "b": 0.5}, {"a": 0.25, "b": 0.4}, {"a": 0.30, "b": 0.6},
          {"a": 0.50, "b": 0.9}, {"a": 0.50, "b": 0.8}, None, {"a": 0.25, "b": 0.4}]
    assert pareto_front(vs, (MIN, MAX)) == [1, 2, 3, 6]  # equal vectors both stay
    assert select(vs, (MIN, MAX)) == 1                    # first: a decides, ties -> b, earliest
    lex = Selection("lexicographic", tolerance={"a": 0.05})
    assert select(vs, (MIN, MAX), lex) == 2               # a within 0.05 of 0.25: b decides
    heavy_b = Selection("weighted", weights={"a": 1.0, "b": 1.0})
    assert select(vs, (MIN, MAX), heavy_b) == 3           # 0.5 - 0.9 is the smallest
    assert rank(vs, (MIN, MAX))[:3] == [1, 6, 2] and rank(vs, (MIN, MAX))[-1] == 5
    assert select([None], (MIN,)) is None


@pytest.mark.parametrize("extra, message", [
    ({"objectives": [{"metric": "eval/ndb"}, {"metric": "eval/ndb"}]}, "listed twice"),
    ({"objectives": [{"metric": "eval/is"}]}, "spectogan metric"),
    ({"objectives": [{"metric": "eval/ndb"}], "metric": "eval/nn_self"}, "not both"),
    ({"objectives": [{"metric": "eval/ndb"}, {"metric": "eval/note_overlap"}],
      "select": {"rule": "weighted", "weights": {"eval/ndb": 1}}}, "every objective"),
    ({"select": {"rule": "lexicographic", "tolerance": {"eval/is": 0.1}}}, "not an objective"),
    ({"select": {"rule": "best"}}, "select must be"),
    ({"search": {**RECIPE_SEARCH, "model.d": {"type": "int", "low": 4, "high": 16}}}, r"d\^2"),
    ({"search": {**RECIPE_SEARCH, "train.seed": {"type": "int", "low": 0, "high": 3}}},
     "replicate axis"),
    ({"search": {"loss.gp_weight": {**LR, "when": {"loss.kind": "wgan-gp"}},
                 "loss.kind": RECIPE_SEARCH["loss.kind"]}}, "listed above"),
    ({"search": {**RECIPE_SEARCH, "loss.r1_weight": {**LR, "when": {"loss.kind": "hinge"}}}},
     "not one of loss.kind's values"),
    ({"baseline": True, "overrides": {"model.upsample": "nearest"},
      "search": {"optim.lr_g": LR}}, "not be the paper's recipe"),
    ({"baseline": True, "search": {**RECIPE_SEARCH, "train.ema_decay": {
        "type": "choice", "values": [0.99, 0.999]}}}, "outside search.train.ema_decay"),
    ({"final": {"replicates": 2}}, "replicates must be 0"),
    ({"final": {"eval_seed": 1_000_100}}, "overlaps the training-time evaluation seeds"),
    ({"final": {"top_k": 3, "n_samples": 9}}, "unknown key 'final.n_samples'"),
])
def test_spec_mistakes_are_one_line_errors(extra, message):
    with pytest.raises(UserError, match=message):
        parse_spec(_raw(**extra))


def test_conditional_space_is_define_by_run_and_the_baseline_is_the_papers_recipe():
    spec = parse_spec(_raw(baseline=True, final={"top_k": 2}))
    assert spec.final_spec.n == 2000 and spec.final_spec.ndb_k == 50
    assert baseline_point(spec) == {"optim.lr_g": 1e-4, "model.upsample": "transpose",
                                    "train.ema_decay": 0.0, "train.augment": "",
                                    "loss.kind": "wgan-gp", "loss.gp_weight": 10.0}
    cfg = trial_config(spec, baseline_point(spec))
    assert (cfg.loss.kind, cfg.loss.n_critic, cfg.optim.lr_d, cfg.model.conditional) == \
        ("wgan-gp", 5, 1e-4, False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace(spec.search)
    kinds = set()
    for _ in range(24):
        trial = study.ask()
        space(trial)
        params = trial.params
        kinds.add(params["loss.kind"])
        assert ("loss.gp_weight" in params) == (params["loss.kind"] == "wgan-gp")
        assert ("loss.r1_weight" in params) == (params["loss.kind"] == "r1")
        trial_config(spec, params)  # every sampled point resolves
        study.tell(trial, 0.0)
    assert kinds == {"wgan-gp", "r1"}
    assert active(spec.search["loss.r1_weight"], {"loss.kind": "r1"})


def test_optuna_seed_is_derived_from_the_sweep_name_unless_set(capsys):
    spec = parse_spec(_raw())
    assert spec.optuna_seed is None
    assert derived_seed("pianogan-maestro") == derived_seed("pianogan-maestro")
    assert derived_seed("pianogan-maestro") != derived_seed("spectogan-fsdd")
    assert derived_seed("x") == 762385986  # stable across processes and versions (sha256)
    assert main(["sweep", SMOKE, "--dry-run", "--name", "other-name"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out.split("# a trial")[0])["resolved"]
    assert resolved["optuna_seed"] == derived_seed("other-name")
    assert parse_spec(_raw(optuna_seed=5)).optuna_seed == 5


def test_spec_round_trips_through_its_dict():
    spec = parse_spec(_raw(objectives=[{"metric": "eval/ndb"},
                                       {"metric": "eval/note_overlap", "mode": "max"}],
                           select={"rule": "lexicographic", "tolerance": {"eval/ndb": 0.05}},
                           final={"n": 500, "ndb_k": 20, "replicates": 3}, baseline=True))
    again = parse_spec(spec.to_dict())  # what every trial re-parses
    assert again == spec and again.multi_objective and again.metric == "eval/ndb"


def test_every_committed_sweep_loads_and_its_baseline_is_the_papers_recipe():
    """The presets have moved on (spectogan-cpu is now R1); sweeps that depend on the old
    values pin them, and a baseline trial is still the paper's recipe."""
    import glob
    import os

    from audiogan.sweep.spec import load_spec

    paths = sorted(glob.glob(os.path.join(os.path.dirname(SMOKE), "*.yaml")))
    assert len(paths) >= 10
    for path in paths:
        spec = load_spec(path)  # parses and checks (an inconsistent baseline is an error)
        cfg = trial_config(spec, baseline_point(spec) if spec.baseline else {})
        if spec.baseline:
            assert (cfg.loss.kind, cfg.model.upsample, cfg.train.ema_decay) == (
                "wgan-gp", "transpose", 0.0), path
    demo = load_spec(os.path.join(os.path.dirname(SMOKE), "spectogan-demo.yaml"))
    assert demo.metric == "eval/cond_acc" and trial_config(demo, {}).model.conditional
