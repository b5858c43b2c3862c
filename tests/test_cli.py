import subprocess
import sys

import pytest
import yaml

from audiogan.cli import main


def run(*argv):
    return subprocess.run([sys.executable, "-m", "audiogan", *argv], capture_output=True, text=True)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("audiogan ")
    r = run("--help")
    assert r.returncode == 0
    assert "train" in r.stdout and "example" in r.stdout


def test_dry_run_shows_override():
    r = run("train", "pianogan", "--dry-run", "--set", "optim.lr_g=2e-4")
    assert r.returncode == 0, r.stderr
    assert "lr_g: 0.0002" in r.stdout
    cfg = yaml.safe_load(r.stdout)
    assert cfg["optim"]["lr_g"] == 2e-4 and cfg["preset"] == "pianogan"


def test_dry_run_cpu_preset_and_flag_shortcuts(capsys):
    assert main(["train", "pianogan-cpu", "--dry-run", "--workers", "2", "--gpu",
                 "--total-steps", "7"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["compute"]["workers"] == 2 and cfg["compute"]["gpu"] is True
    assert cfg["train"]["total_steps"] == 7


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "pianogan", "--dry-run", "--set", "optim.nope=1"], "optim.nope"),
        (["train", "pianogan", "--dry-run", "--set", "loss.n_critic=x"], "loss.n_critic"),
        (["train", "nosuch", "--dry-run"], "unknown preset"),
        (["train", "pianogan", "--dry-run", "--workers", "3"], "divisible"),
        (["train"], "preset"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, fragment):
    r = run(*argv)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert fragment in lines[0] and "Traceback" not in r.stderr
