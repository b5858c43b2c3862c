"""Seed replicates (the final stage): configurations trained again from scratch with new
seeds, at the full budget, as the trials of their own Tune experiment
(`SWEEP_DIR/final/replicates/`), in parallel as far as the sweep's concurrency and the
machine allow.

Each entry is {role, source, seed, params}: the source trial's sampled values, trained
with `train.seed = seed` (`keys.split_trial_config` adds it), so a replicate differs from
its source configuration in the seed only. There is no scheduler (FIFO: no early
stopping) and no searcher (a grid over the entries). Re-running restores the experiment
(`Tuner.restore`) and finishes what is unfinished, so each replicate is trained once.
"""

from __future__ import annotations

import logging
from typing import Any

from audiogan import storage
from audiogan.cluster.hooks import FaultHooks
from audiogan.sweep import tuning
from audiogan.sweep.keys import (FINAL_DIR, LOOP, REPLICATE_KEY, REPLICATES_DIR, SESSION,
                                 SWEEP_KEY, TUNER_STATE)
from audiogan.sweep.results import TrialSummary, load_trials
from audiogan.sweep.spec import SweepSpec

log = logging.getLogger(__name__)


def replicates_dir(sweep_dir: str) -> str:
    return storage.join(sweep_dir, FINAL_DIR, REPLICATES_DIR)


def entries(sources: list[tuple[str, str, dict[str, Any]]], seeds: list[int]
            ) -> list[dict[str, Any]]:
    """[(role, source trial id, params)] x seeds -> the replicate entries."""
    return [{"role": role, "source": source, "seed": int(seed), "params": dict(params)}
            for role, source, params in sources for seed in seeds]


def run_replicates(spec: SweepSpec, data: str, sweep_dir: str, planned: list[dict[str, Any]], *,
                   local: bool, cluster_cpus: float, loop: str = LOOP, session: str = SESSION,
                   hooks: FaultHooks = FaultHooks()) -> int:
    """Train every planned replicate once; returns how many are left unfinished."""
    from ray import tune

    where = replicates_dir(sweep_dir)
    done = load_replicates(spec, sweep_dir)
    if len(done) == len(planned) and all(t.status in ("TERMINATED", "ERROR") for t in done):
        return 0  # trained already (a resumed or re-run final stage)
    if storage.exists(storage.join(where, TUNER_STATE)):
        tuner = tuning.restore(where, spec)
    else:
        storage.delete_dir(where)  # a start killed before Tune saved its state
        consts = tuning.constants(spec, data, sweep_dir, where, loop=loop, session=session,
                                  hooks=hooks)
        tuner = tune.Tuner(
            tuning.trainable(spec),
            param_space={SWEEP_KEY: consts, REPLICATE_KEY: tune.grid_search(planned)},
            tune_config=tune.TuneConfig(
                num_samples=1, trial_dirname_creator=tuning.dirname,
                trial_name_creator=tuning.dirname,
                max_concurrent_trials=tuning.concurrency(spec, cluster_cpus, local,
                                                         trials=len(planned))),
            run_config=tuning.run_config(spec, REPLICATES_DIR,
                                         storage.join(sweep_dir, FINAL_DIR),
                                         tuning.callbacks(spec, None),
                                         [f"{REPLICATE_KEY}/role", f"{REPLICATE_KEY}/seed"]))
    log.info("final stage: %d replicate trial(s) -> %s", len(planned), where)
    tuner.fit()
    done = load_replicates(spec, sweep_dir)
    return len(planned) - sum(t.status in ("TERMINATED", "ERROR") for t in done)


def load_replicates(spec: SweepSpec, sweep_dir: str) -> list[TrialSummary]:
    where = replicates_dir(sweep_dir)
    if not storage.exists(storage.join(where, TUNER_STATE)):
        return []
    return load_trials(where, spec.objective_list, selection=spec.selection)
