"""A stand-in training loop with known objectives (tests of ASHA, `best`, multi-objective
sweeps and the final stage), and a stand-in final evaluation of its checkpoints.

Evaluations at the sweep's critic-step milestones. `eval/ndb` (min): every trial is best at
its FIRST evaluation and worse afterwards, with a level set by optim.lr_g, so "best over
all evaluations" and "best at the last evaluation" differ, and ASHA has something to cut.
`eval/note_overlap` (max) improves with every evaluation and with the level: the two
objectives trade off within a trial and across trials, so Pareto fronts are non-trivial.
`train.seed` shifts both a little (replicates differ).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

from audiogan.config import Config


def level(lr_g: float) -> float:
    return (math.log10(lr_g) + 5.0) / 2.0          # lr_g in 1e-5..1e-3 -> 0..1


def objective(lr_g: float, k: int, seed: int = 0) -> float:
    return round(level(lr_g) + (0.0 if k == 1 else 0.5 + 0.1 * k) + 0.01 * seed, 6)


def overlap(lr_g: float, k: int, seed: int = 0) -> float:
    return round(0.3 * level(lr_g) + 0.05 * k - 0.005 * seed, 6)


def train_loop(config: dict[str, Any], session: Any = None, hooks: Any = None) -> None:
    cfg = Config.from_dict(config["cfg"])
    with session.restored_checkpoint() as start:
        step = json.load(open(os.path.join(start, "state.json")))["step"] if start else 0
    k = step // cfg.train.eval_every
    lr_g, seed = cfg.optim.lr_g, cfg.train.seed
    while step < cfg.train.total_steps:
        step += 1
        if step % cfg.train.eval_every and step != cfg.train.total_steps:
            continue
        k += 1
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"step": step, "k": k, "lr_g": lr_g, "seed": seed}, f)
            session.report({"progress/step": step,
                            "progress/critic_steps": step * cfg.loss.n_critic,
                            "eval/ndb": objective(lr_g, k, seed),
                            "eval/note_overlap": overlap(lr_g, k, seed)}, checkpoint_dir=d)


def final_evaluate(checkpoint: str, data: str, settings: dict[str, Any],
                   cache: Any = None) -> dict[str, Any]:
    """A final-evaluation record of a fake checkpoint: the known values +- 0.05."""
    state = json.load(open(os.path.join(checkpoint, "state.json")))
    n, k = settings["n"], settings["ndb_k"]
    values = {"final/eval/ndb": objective(state["lr_g"], state["k"], state["seed"]),
              "final/eval/note_overlap": overlap(state["lr_g"], state["k"], state["seed"])}
    return {"checkpoint": checkpoint, "n": n, "ndb_k": k, "eval_seed": settings["eval_seed"],
            "metrics": {key: {"value": v, "lo": v - 0.05, "hi": v + 0.05, "n": n, "k": k}
                        for key, v in values.items()}}
