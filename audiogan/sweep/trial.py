"""What runs inside one sweep trial: `run_trial`, the Tune function trainable.

It resolves the trial's config from the sweep constants plus the sampled values
(`spec.trial_config`) and runs the one training loop: directly in the trial process for a
single worker (`train_loop(config, session=TuneSession())`), or in a Ray Train
`TorchTrainer` built inside the trial for several workers, whose reports a
`TuneReportCallback` relays to Tune (metrics plus `checkpoint_path`; Tune itself gets no
checkpoint then). The resolved config is written first into the trial directory
(`config.yaml`): `audiogan train --config` trains any trial again.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from audiogan import storage
from audiogan.cluster.hooks import FaultHooks
from audiogan.sweep.keys import LOOP, SESSION, TRIAL_CONFIG, split_trial_config, trial_dirname
from audiogan.sweep.spec import parse_spec, trial_config


def load_ref(ref: str) -> Callable[..., Any]:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def run_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable (one trial)."""
    from ray import tune

    constants, params = split_trial_config(config)
    spec = parse_spec(constants["spec"])
    cfg = trial_config(spec, params)
    hooks = FaultHooks.from_dict(constants.get("hooks"))
    ctx = tune.get_context()
    if constants.get("experiment_dir"):  # the trial directory on the sweep's storage
        storage.write_bytes_atomic(storage.join(constants["experiment_dir"],
                                                trial_dirname(ctx.get_trial_id()), TRIAL_CONFIG),
                                   cfg.to_yaml().encode())
    if cfg.compute.workers == 1:
        loop = load_ref(constants.get("loop", LOOP))
        session = load_ref(constants.get("session", SESSION))()
        loop({"cfg": cfg.to_dict(), "data": constants["data"], "run_dir": ctx.get_trial_dir()},
             session=session, hooks=hooks)
        return
    _run_multi_worker(cfg, constants, ctx.get_trial_id(), hooks)


def _run_multi_worker(cfg: Any, constants: dict[str, Any], trial_id: str,
                      hooks: FaultHooks) -> None:
    # Train V2 inside Tune: the trial is a thin driver; the TorchTrainer gets its own
    # workers. Same run name on a restarted trial -> Train resumes from its own latest
    # checkpoint under `train_storage`.
    from ray.tune.integration.ray_train import TuneReportCallback

    from audiogan.train.run import build_trainer

    trainer = build_trainer(cfg, constants["data"], name=f"train-{trial_id}",
                            storage_path=constants["train_storage"], hooks=hooks)
    run_config = trainer.run_config
    run_config.callbacks = [*(run_config.callbacks or []), TuneReportCallback()]
    trainer.fit()
