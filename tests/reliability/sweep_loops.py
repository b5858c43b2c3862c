"""Trial loops for the sweep fault tests: the real loop, except one trial that raises."""

from __future__ import annotations

from typing import Any

from audiogan.config import Config
from audiogan.train.loop import train_loop

MESSAGE = "injected trial failure: the baseline trial raises on purpose"


def raising_loop(config: dict[str, Any], session: Any = None, hooks: Any = None) -> None:
    cfg = Config.from_dict(config["cfg"])
    if (cfg.optim.lr_g, cfg.loss.n_critic, cfg.loss.gp_weight) == (1e-4, 5, 10.0):
        raise RuntimeError(MESSAGE)
    train_loop(config, session=session, hooks=hooks)
