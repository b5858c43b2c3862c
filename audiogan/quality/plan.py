"""The quality experiments (issue 16) as a plan of `audiogan` commands that resumes.

    python -m audiogan.quality run --work /work/runs/quality \\
        --fsdd ../shared/data/fsdd --maestro ../shared/data/maestro-mini/maestro-v3.0.0 \\
        [--phase rows|seeds|long|samples] [--only spectogan|pianogan] [--concurrency 2]
    python -m audiogan.quality report --work /work/runs/quality --out results/quality

`run` prepares the data (preprocess, the robust digit classifier), then trains each row of
the ablation for the same training wall time (`train.time_budget_s`, the run's own clock,
evaluation excluded) and scores each row's final checkpoint with one fixed final
evaluation: FINAL_N generated examples, NDB with K = FINAL_K, on seeds from FINAL_SEED
(disjoint from the training-time evaluation seeds). Two runs share the 2 cores (the CPU
presets train on one thread). Re-running the same command skips finished stages and
continues unfinished training runs from their latest checkpoint. `report` writes the
table and plot from the final evaluations' JSON only. `--phase samples` draws every
trained run's pictures (a spectrogram grid with a row per digit, or piano rolls), the
same seeds for every row, so rows can be compared by looking, and the long runs' committed
samples (seeds 0-9 for every class), which `report` copies to `results/quality/samples/`.

Rows, each adding one step to the one above (the paper's recipe first):
  paper      the CPU presets as they were: WGAN-GP, transposed convolutions, d = 4 / 8
  width      d x 2
  cond       + model.conditional (digits; MAESTRO composers)
  ema        + train.ema_decay 0.999 (warm-up 0.05)
  augment    + train.augment (shift, cutout; + time/frequency masks for spectrograms)
  nearest    + model.upsample nearest
  r1         non-saturating loss + R1 (gamma 1) instead of WGAN-GP, with its usual
             companions: n_critic 1, Adam lr 2e-4, betas (0, 0.99)
  onehot     PianoGAN only: + model.pitch onehot (pitch as a softmax over the 88 keys)
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import yaml

from audiogan.stages import Stage
from audiogan.sweep.space import PAPER_RECIPE

ROW_BUDGET_S = 900        # >= 15 min of training per row
LONG_BUDGET_S = 3600      # >= 60 min for the long runs
FINAL_N, FINAL_K, FINAL_SEED = 2000, 50, 2_000_000
ROWS = ("paper", "width", "cond", "ema", "augment", "nearest", "r1", "onehot")
FAMILY_ROWS = {"spectogan": ROWS[:-1], "pianogan": ROWS}  # one-hot pitch is PianoGAN's
# The paper's recipe at the CPU width, written out: the presets have since taken the
# ablation's findings (spectogan-cpu is the r1 row, unconditional). R1's weight is unused
# under WGAN-GP; it keeps its old default so the rows' configs stay the ones they ran with.
PAPER = {**PAPER_RECIPE, "loss.r1_weight": 10.0}
BASE = {"spectogan": ("spectogan-cpu", {"model.d": 4, **PAPER}),
        "pianogan": ("pianogan-cpu", {"model.d": 8, **PAPER})}
AUGMENT = {"spectogan": "shift,cutout,mask", "pianogan": "shift,cutout"}
R1 = {"loss.kind": "r1", "loss.n_critic": 1, "loss.r1_weight": 1.0, "optim.lr_g": 2e-4,
      "optim.lr_d": 2e-4, "optim.beta1": 0.0, "optim.beta2": 0.99}
COMMON = {"train.total_steps": 10_000_000, "metrics.n_samples": 500, "metrics.ndb_k": 20}


def row_overrides(family: str, row: str) -> dict[str, Any]:
    """The config of an ablation row: every step of the rows before it, plus its own."""
    if row not in FAMILY_ROWS[family]:
        raise ValueError(f"{family} has no ablation row '{row}'")
    preset, over = BASE[family]
    steps = {"paper": {}, "width": {"model.d": 2 * over["model.d"]},
             "cond": {"model.conditional": True},
             "ema": {"train.ema_decay": 0.999, "train.ema_rampup": 0.05},
             "augment": {"train.augment": AUGMENT[family]},
             "nearest": {"model.upsample": "nearest"}, "r1": R1,
             "onehot": {"model.pitch": "onehot"}}
    out = {**COMMON, **over}
    for name in ROWS[:ROWS.index(row) + 1]:
        out.update(steps[name])
    # Evaluate every few minutes of training (evaluation stays well under 10% of a run;
    # a PianoGAN step is several times cheaper than a SpectoGAN one).
    every = {"spectogan": 250, "pianogan": 1000}[family]
    out["train.eval_every"] = every if out.get("loss.n_critic", 5) > 1 else 4 * every
    return out


def _set(over: dict[str, Any]) -> list[str]:
    return [a for k, v in over.items() for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]


def _train_and_score(name: str, family: str, over: dict[str, Any], budget: float, work: str,
                     data: str, after: tuple[str, ...]) -> list[Stage]:
    run = os.path.join(work, "runs", name)
    final = os.path.join(run, "final.json")
    over = {**over, "train.time_budget_s": budget}
    return [
        Stage(f"train-{name}", ("train", BASE[family][0], "--data", data, "--out", run,
                                *_set(over)), os.path.join(run, "summary.json"), after),
        Stage(f"final-{name}", ("evaluate", run, "--data", data, "--n", str(FINAL_N),
                                "--ndb-k", str(FINAL_K), "--eval-seed", str(FINAL_SEED),
                                "--out", final), final, (f"train-{name}",)),
    ]


def plan(work: str, fsdd: str, maestro: str, phase: str, only: Sequence[str]) -> list[Stage]:
    data = {"spectogan": os.path.join(work, "data", "fsdd"),
            "pianogan": os.path.join(work, "data", "maestro")}
    stages = [
        Stage("data-fsdd", ("preprocess", "fsdd", "--source", fsdd, "--out", data["spectogan"],
                            "--overwrite"), os.path.join(data["spectogan"], "manifest.json")),
        Stage("data-maestro", ("preprocess", "maestro", "--source", maestro, "--out",
                               data["pianogan"], "--overwrite"),
              os.path.join(data["pianogan"], "manifest.json")),
        Stage("classifier", ("classifier", "train", "--data", data["spectogan"],
                             "--leave-one-speaker-out"),
              os.path.join(data["spectogan"], "classifier", "classifier.json"), ("data-fsdd",)),
    ]
    ready = {"spectogan": ("classifier",), "pianogan": ("data-maestro",)}
    if phase == "samples":
        done = [name for name in sorted(os.listdir(os.path.join(work, "runs")))
                if os.path.exists(os.path.join(work, "runs", name, "summary.json"))]
        return stages + [_samples(work, name) for name in done] + [
            _committed(work, name) for name in COMMITTED if name in done]
    if phase == "rows":
        # Row by row, the families side by side: an interrupted plan has both families'
        # first rows rather than all of one family.
        for row in ROWS:
            for family in (f for f in only if row in FAMILY_ROWS[f]):
                stages += _train_and_score(f"{family}-{row}", family,
                                           row_overrides(family, row), ROW_BUDGET_S, work,
                                           data[family], ready[family])
        return stages
    for family in only:
        if phase == "seeds":
            for row in best_rows(work, family):
                stages += _train_and_score(f"{family}-{row}-seed1", family,
                                           {**row_overrides(family, row), "train.seed": 1},
                                           ROW_BUDGET_S, work, data[family], ready[family])
        else:  # long runs of the best recipe
            best = best_rows(work, family)[0]
            over = row_overrides(family, best)
            stages += _train_and_score(f"{family}-long", family, over, LONG_BUDGET_S, work,
                                       data[family], ready[family])
            if family == "spectogan" and over.get("model.conditional"):
                stages += _train_and_score(f"{family}-long-uncond", family,
                                           {**over, "model.conditional": False},
                                           LONG_BUDGET_S, work, data[family], ready[family])
    return stages


def _samples(work: str, name: str) -> Stage:
    """Seeds 0-2 for every digit (conditional), 0-11 (unconditional), or two phrases."""
    run = os.path.join(work, "runs", name)
    out = os.path.join(run, "samples")
    with open(os.path.join(run, "config.yaml")) as f:
        conditional = bool(yaml.safe_load(f)["model"]["conditional"])
    if name.startswith("pianogan"):
        seeds: tuple[str, ...] = ("--seeds", "0-1")
    else:
        seeds = ("--seeds", "0-2", "--labels", "0-9") if conditional else ("--seeds", "0-11")
    return Stage(f"samples-{name}", ("sample", run, "--out", out, *seeds),
                 os.path.join(out, "samples.json"))


# The long runs whose samples are committed (`report` copies them to results/quality/
# samples/): seeds 0-9 for every class, not picked.
COMMITTED = ("spectogan-long", "pianogan-long")


def _committed(work: str, name: str) -> Stage:
    out = os.path.join(work, "runs", name, "committed")
    return Stage(f"committed-{name}", ("sample", os.path.join(work, "runs", name), "--out",
                                       out, "--seeds", "0-9", "--labels", "all"),
                 os.path.join(out, "samples.json"))


def final_scores(work: str, name: str) -> dict[str, Any] | None:
    path = os.path.join(work, "runs", name, "final.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def headline(family: str, result: dict[str, Any]) -> float:
    """One number to rank rows by: SpectoGAN cond_acc (else IS / real), PianoGAN NDB gap."""
    m, floor = result["metrics"], result["floor"]
    if family == "spectogan":
        if "eval/cond_acc" in m:
            return m["eval/cond_acc"]
        return m.get("eval/is", 0.0) / max(floor.get("eval/is", 1.0), 1e-9)
    return -(m["eval/ndb"] - floor["eval/ndb"])


def best_rows(work: str, family: str, k: int = 2) -> list[str]:
    rows = FAMILY_ROWS[family]
    scored = [(headline(family, r), row) for row in rows
              if (r := final_scores(work, f"{family}-{row}")) is not None]
    if len(scored) < len(rows):
        raise SystemExit(f"{family}: run --phase rows to the end first "
                         f"({len(scored)} of {len(rows)} rows scored)")
    return [row for _, row in sorted(scored, reverse=True)[:k]]
