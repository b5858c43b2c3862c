"""A stand-in training loop with a known objective curve (tests of ASHA and `best` only).

Evaluations at the sweep's critic-step milestones; every trial is best at its FIRST
evaluation and worse afterwards, with a level set by optim.lr_g, so "best over all
evaluations" and "best at the last evaluation" differ, and ASHA has something to cut.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

from audiogan.config import Config


def objective(lr_g: float, k: int) -> float:
    level = (math.log10(lr_g) + 5.0) / 2.0          # lr_g in 1e-5..1e-3 -> 0..1
    return round(level + (0.0 if k == 1 else 0.5 + 0.1 * k), 6)


def train_loop(config: dict[str, Any], session: Any = None, hooks: Any = None) -> None:
    cfg = Config.from_dict(config["cfg"])
    with session.restored_checkpoint() as start:
        step = json.load(open(os.path.join(start, "state.json")))["step"] if start else 0
    k = step // cfg.train.eval_every
    while step < cfg.train.total_steps:
        step += 1
        if step % cfg.train.eval_every and step != cfg.train.total_steps:
            continue
        k += 1
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"step": step}, f)
            session.report({"progress/step": step,
                            "progress/critic_steps": step * cfg.loss.n_critic,
                            "eval/ndb": objective(cfg.optim.lr_g, k)}, checkpoint_dir=d)
