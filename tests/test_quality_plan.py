"""The quality plan (issue 16): each ablation row adds one step to the row above, the
families interleave, and each trained run's pictures use the same seeds."""

from __future__ import annotations

import os

import pytest
import yaml

from audiogan.config import resolve
from audiogan.quality.plan import BASE, FAMILY_ROWS, PAPER, plan, row_overrides


def test_each_row_adds_its_step_to_every_step_above():
    for family, names in FAMILY_ROWS.items():
        rows = [row_overrides(family, r) for r in names]
        assert rows[1]["model.d"] == 2 * rows[0]["model.d"]
        assert rows[1]["model.conditional"] is False and rows[2]["model.conditional"] is True
        for above, below in zip(rows, rows[1:]):
            for key, value in above.items():  # nothing above is undone (width, R1 and the
                # steps that replace the paper's written-out values excepted)
                if key not in ("model.d", "train.eval_every", *PAPER) or (
                        key in PAPER and value != PAPER[key]):
                    assert below[key] == value, key
        r1 = rows[names.index("r1")]
        assert r1["loss.kind"] == "r1" and r1["loss.n_critic"] == 1
        assert r1["train.eval_every"] == 4 * rows[0]["train.eval_every"]  # same wall spacing
    assert row_overrides("spectogan", "paper")["model.d"] == 4
    assert row_overrides("pianogan", "augment")["train.augment"] == "shift,cutout"
    assert row_overrides("pianogan", "onehot")["model.pitch"] == "onehot"
    with pytest.raises(ValueError, match="no ablation row 'onehot'"):
        row_overrides("spectogan", "onehot")


def test_the_paper_row_is_the_papers_recipe_whatever_the_preset_now_is():
    for family in ("spectogan", "pianogan"):
        cfg = resolve(BASE[family][0], row_overrides(family, "paper"))
        assert (cfg.loss.kind, cfg.loss.n_critic, cfg.model.upsample) == ("wgan-gp", 5, "transpose")
        assert (cfg.train.ema_decay, cfg.train.augment, cfg.optim.beta1) == (0.0, "", 0.5)
        assert not cfg.model.conditional


def test_rows_interleave_families_and_samples_follow_the_config(tmp_path):
    names = [s.name for s in plan(str(tmp_path), "fsdd", "maestro", "rows",
                                  ["spectogan", "pianogan"]) if s.name.startswith("train-")]
    assert names[:4] == ["train-spectogan-paper", "train-pianogan-paper",
                         "train-spectogan-width", "train-pianogan-width"]
    for name, conditional in (("spectogan-cond", True), ("spectogan-paper", False),
                              ("pianogan-cond", True), ("spectogan-width", None)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        if conditional is not None:  # a run still training has no summary: no pictures yet
            (run / "summary.json").write_text("{}")
        (run / "config.yaml").write_text(yaml.safe_dump({"model": {"conditional": bool(conditional)}}))
    stages = {s.name: s.argv for s in plan(str(tmp_path), "fsdd", "maestro", "samples",
                                           ["spectogan"]) if s.name.startswith("samples-")}
    assert set(stages) == {"samples-spectogan-cond", "samples-spectogan-paper",
                           "samples-pianogan-cond"}
    assert stages["samples-spectogan-cond"][-4:] == ("--seeds", "0-2", "--labels", "0-9")
    assert stages["samples-spectogan-paper"][-2:] == ("--seeds", "0-11")
    assert stages["samples-pianogan-cond"][-2:] == ("--seeds", "0-1")
    assert all(os.path.basename(a[a.index("--out") + 1]) == "samples" for a in stages.values())
