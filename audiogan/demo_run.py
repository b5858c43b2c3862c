"""`make demo`: the whole job end to end on embedded local Ray, then `report.md`.

Stages run as separate `audiogan` processes (the commands a user would type, each with
its own Ray lifetime). A stage whose outputs exist and whose command, sweep YAML and
upstream stamps are unchanged is skipped, so a re-run only redoes what changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import time
from typing import Sequence

from audiogan.stages import Stage, run_stages

log = logging.getLogger(__name__)


def stages(out: str) -> list[Stage]:
    data, runs = os.path.join(out, "data"), os.path.join(out, "runs")
    raw = os.path.join(data, "raw")
    piano, digits = os.path.join(data, "piano"), os.path.join(data, "digits")
    sweeps = os.path.join(runs, "sweeps")
    best_p, best_s = os.path.join(out, "best", "pianogan"), os.path.join(out, "best", "spectogan")
    return [
        Stage("data", ("data", "demo", "--out", raw), os.path.join(raw, "PROVENANCE.json")),
        Stage("preprocess-piano", ("preprocess", "maestro", "--source",
                                   os.path.join(raw, "maestro-v3.0.0"), "--out", piano,
                                   "--overwrite"),
              os.path.join(piano, "manifest.json"), ("data",)),
        Stage("preprocess-digits", ("preprocess", "sc09", "--source", os.path.join(raw, "sc09"),
                                    "--out", digits, "--overwrite"),
              os.path.join(digits, "manifest.json"), ("data",)),
        # Both cores: nothing else runs by then but the piano preprocessing's last seconds.
        Stage("classifier", ("classifier", "train", "--data", digits, "--out",
                             os.path.join(digits, "classifier"), "--threads", "2"),
              os.path.join(digits, "classifier", "classifier.json"), ("preprocess-digits",)),
        Stage("sweep-piano", ("sweep", "sweeps/pianogan-demo.yaml", "--data", piano,
                              "--storage", sweeps, "--name", "pianogan-demo"),
              os.path.join(sweeps, "pianogan-demo", "leaderboard.csv"), ("preprocess-piano",),
              inputs=("sweeps/pianogan-demo.yaml",)),
        Stage("sweep-digits", ("sweep", "sweeps/spectogan-demo.yaml", "--data", digits,
                               "--storage", sweeps, "--name", "spectogan-demo"),
              os.path.join(sweeps, "spectogan-demo", "leaderboard.csv"), ("classifier",),
              inputs=("sweeps/spectogan-demo.yaml",)),
        Stage("best-piano", ("best", os.path.join(sweeps, "pianogan-demo"), "--out", best_p),
              os.path.join(best_p, "best_config.yaml"), ("sweep-piano",)),
        Stage("best-digits", ("best", os.path.join(sweeps, "spectogan-demo"), "--out", best_s),
              os.path.join(best_s, "best_config.yaml"), ("sweep-digits",)),
        Stage("evaluate-piano", ("evaluate", os.path.join(best_p, "checkpoint"), "--data", piano,
                                 "--out", os.path.join(best_p, "metrics.json")),
              os.path.join(best_p, "metrics.json"), ("best-piano",)),
        Stage("evaluate-digits", ("evaluate", os.path.join(best_s, "checkpoint"), "--data", digits,
                                  "--out", os.path.join(best_s, "metrics.json")),
              os.path.join(best_s, "metrics.json"), ("best-digits",)),
        Stage("sample-piano", ("sample", os.path.join(best_p, "checkpoint"), "--out",
                               os.path.join(best_p, "samples"), "--seeds", "0-3"),
              os.path.join(best_p, "samples", "samples.json"), ("best-piano",)),
        Stage("sample-digits", ("sample", os.path.join(best_s, "checkpoint"), "--out",
                                os.path.join(best_s, "samples"), "--seeds", "0-2",
                                "--labels", "0-9"),  # conditional: a grid row per digit
              os.path.join(best_s, "samples", "samples.json"), ("best-digits",)),
    ]


def _sweep_dir(stage: Stage) -> str:
    argv = list(stage.argv)
    return os.path.join(argv[argv.index("--storage") + 1], argv[argv.index("--name") + 1])


def _argv(stage: Stage) -> list[str]:
    """The stage's command; for a sweep that is to run again: `--resume` when it was
    interrupted (it continues, not restarts), a fresh start when it had finished (its YAML or
    an upstream stage changed, so the old results are stale and are removed)."""
    from audiogan.sweep.keys import TUNER_STATE

    argv = list(stage.argv)
    if stage.argv[0] != "sweep":
        return argv
    sweep_dir = _sweep_dir(stage)
    if os.path.exists(stage.done_marker):
        log.info("%s: its inputs changed; removing the finished sweep %s", stage.name, sweep_dir)
        shutil.rmtree(sweep_dir)
    elif os.path.exists(os.path.join(sweep_dir, TUNER_STATE)):
        argv.append("--resume")
    return argv


# The data preparation stages: short processes, mostly start-up, run two at a time.
PREPARE = ("data", "preprocess-piano", "preprocess-digits", "classifier")


def run(out: str, python: str = sys.executable,
        spans: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """Run every stage not already done; returns seconds per stage (0.0 = skipped), and
    fills `spans` (if given) with each stage's (start, end) since the plan began.

    The data preparation stages (short processes, mostly start-up) run two at a time: the
    two preprocessings side by side, then the classifier beside the piano one's end. The
    sweeps and everything after run alone, so each stage's time is its own."""
    os.makedirs(out, exist_ok=True)
    plan = [s if s.name in PREPARE else dataclasses.replace(s, alone=True)
            for s in stages(out)]
    return run_stages(plan, os.path.join(out, ".stages.json"), concurrency=2, python=python,
                      prepare=_argv, spans=spans)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiogan.demo_run")
    parser.add_argument("--out", default="results/demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    spans: dict[str, tuple[float, float]] = {}
    seconds = run(args.out, spans=spans)
    from audiogan.report import write_demo_report

    commands = [(s.name, s.argv) for s in stages(args.out)]
    path = write_demo_report(args.out, seconds, total_s=time.perf_counter() - t0,
                             commands=commands, spans=spans, prepare=PREPARE)
    print(f"make demo: done in {time.perf_counter() - t0:.0f} s; report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
