"""`audiogan train --config FILE [--set ...]`: a resolved config file trains exactly that
config; preset + overrides round trip through the file; files written before schema 2
(the committed results/sweeps/*/best_config.yaml) load as the same run."""

from __future__ import annotations

import os

import pytest
import yaml

from audiogan.cli import main
from audiogan.config import FIXED_SPECTROGRAM, SCHEMA_VERSION, resolve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD = sorted(os.path.join(ROOT, "results", "sweeps", d, "best_config.yaml")
             for d in ("pianogan-cpu", "spectogan-cpu"))


def _dry_run(capsys, *argv: str) -> dict:
    assert main(["train", *argv, "--dry-run"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("preset, overrides", [
    ("pianogan-cpu", ["optim.lr_g=2e-4", "loss.kind=r1", "loss.r1_weight=0.5",
                      "model.upsample=nearest", "train.ema_decay=0.999"]),
    ("spectogan-cpu", ["model.conditional=true", "train.augment=shift,cutout,mask",
                       "compute.precision=bf16"]),
    ("spectogan", []),
])
def test_preset_plus_overrides_round_trip_exactly_through_a_config_file(
        preset, overrides, tmp_path, capsys):
    args = [a for o in overrides for a in ("--set", o)]
    written = _dry_run(capsys, preset, *args)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(written, sort_keys=False))
    assert _dry_run(capsys, "--config", str(path)) == written
    assert written == resolve(preset, overrides).to_dict()
    # --set and the flag shortcuts apply on top of the file, nothing else changes.
    again = _dry_run(capsys, "--config", str(path), "--set", "optim.lr_d=3e-4",
                     "--total-steps", "77")
    assert (again["optim"]["lr_d"], again["train"]["total_steps"]) == (3e-4, 77)
    again["optim"]["lr_d"], again["train"]["total_steps"] = (written["optim"]["lr_d"],
                                                             written["train"]["total_steps"])
    assert again == written


@pytest.mark.parametrize("path", OLD, ids=lambda p: p.split(os.sep)[-2])
def test_a_config_file_written_before_schema_2_trains_the_same_run(path, capsys):
    old = yaml.safe_load(open(path))
    assert "schema_version" not in old  # what this test is about: a version-1 file
    new = _dry_run(capsys, "--config", path)
    assert new["schema_version"] == SCHEMA_VERSION and new["preset"] == old["preset"]
    for section, values in old.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if section == "data" and key in FIXED_SPECTROGRAM:
                assert key not in new["data"]  # fixed by the networks, dropped in schema 2
            elif (section, key) == ("train", "objective_mode") and not value:
                continue
            else:
                assert new[section][key] == value, f"{section}.{key}"
    # Keys added since then take the defaults that keep the paper's recipe.
    assert (new["loss"]["kind"], new["model"]["upsample"], new["train"]["ema_decay"],
            new["model"]["conditional"]) == ("wgan-gp", "transpose", 0.0, False)


@pytest.mark.parametrize("argv, message", [
    (["pianogan-cpu", "--config", OLD[0]], "not both"),
    (["--config", "/nonexistent/config.yaml"], "not found"),
    (["--config", os.path.join(ROOT, "sweeps", "pianogan-smoke.yaml")], "no 'preset' key"),
])
def test_config_file_mistakes_are_one_line_errors(argv, message, capsys):
    assert main(["train", *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
