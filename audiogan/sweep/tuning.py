"""The Tune pieces shared by a sweep's search and its replicate trials (`audiogan.sweep`,
`audiogan.sweep.replicates`): the trainable with its resources, how many trials run at
once, the constants every trial gets, and the run config (checkpoints kept, retries, the
live table, the callbacks that keep the Pareto checkpoints and copy the study)."""

from __future__ import annotations

from typing import Any

from audiogan import storage
from audiogan.cluster.hooks import FaultHooks
from audiogan.sweep.keys import CRITIC_STEPS, trial_dirname
from audiogan.sweep.spec import SweepSpec, probe_config

DRIVER_MEMORY_BYTES = 256 * 1024 * 1024  # a multi-worker trial's driver: no CPU, see below


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    cfg = probe_config(spec)
    if spec.workers == 1:
        res = {"cpu": float(cfg.compute.cpus_per_worker)}
        if spec.gpu:
            res["gpu"] = 1.0
        return res
    # The trial only drives a TorchTrainer that asks for its own workers. Tune rejects
    # {"cpu": 0}, and any CPU fraction would keep a 2-worker run from ever fitting on a
    # 2-core machine (workers take whole CPUs), so the driver reserves memory only.
    return {"cpu": 0, "memory": float(DRIVER_MEMORY_BYTES)}


def concurrency(spec: SweepSpec, cluster_cpus: float, local: bool,
                trials: int | None = None) -> int:
    """Trials in flight: the spec's limit, never more than the trials asked for (`trials`,
    default num_samples), and locally never more CPUs in use than the machine has."""
    limit = min(spec.max_concurrent_trials, trials or spec.num_samples)
    if local:
        per_trial = spec.workers * probe_config(spec).compute.cpus_per_worker
        limit = min(limit, max(1, int(cluster_cpus // per_trial)))
    return max(1, limit)


def trainable(spec: SweepSpec) -> Any:
    from ray import tune

    from audiogan.sweep.trial import run_trial

    return tune.with_resources(run_trial, trial_resources(spec))


def constants(spec: SweepSpec, data: str, sweep_dir: str, experiment_dir: str, *, loop: str,
              session: str, hooks: FaultHooks) -> dict[str, Any]:
    """What every trial of an experiment shares (the `sweep` key of its config)."""
    return {"spec": spec.to_dict(), "data": data, "loop": loop, "session": session,
            "train_storage": storage.join(experiment_dir, "train"),
            "experiment_dir": experiment_dir, "sweep_dir": sweep_dir,
            "hooks": hooks.to_dict()}


def restore(path: str, spec: SweepSpec) -> Any:
    """`Tuner.restore` of the experiment at `path` (local or object storage, through the
    same filesystem as a fresh run's RunConfig), finishing unfinished and errored trials."""
    from ray import tune

    ray_path, ray_fs = storage.for_ray(path)
    return tune.Tuner.restore(ray_path, trainable(spec), resume_unfinished=True,
                              resume_errored=True, storage_filesystem=ray_fs)


def run_config(spec: SweepSpec, name: str, storage_path: str, callbacks: list[Any],
               parameter_columns: list[str] | None = None) -> Any:
    """Checkpoints: with one objective the best `train.keep_best` by it plus the latest;
    with several every checkpoint while the trial runs, and its Pareto front plus the
    latest once it ends (`callbacks.ParetoCheckpoints`: Tune ranks by one attribute)."""
    from ray import tune

    cfg = probe_config(spec)
    keep = None if spec.multi_objective else cfg.train.keep_best
    ray_path, ray_fs = storage.for_ray(storage_path)
    return tune.RunConfig(
        name=name, storage_path=ray_path, storage_filesystem=ray_fs,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=keep,
                                                checkpoint_score_attribute=spec.metric,
                                                checkpoint_score_order=spec.mode),
        failure_config=tune.FailureConfig(max_failures=cfg.train.max_failures),
        progress_reporter=reporter(spec, parameter_columns), callbacks=callbacks, verbose=1)


def callbacks(spec: SweepSpec, study_location: tuple[str, str, str] | None) -> list[Any]:
    """`study_location` = (the spec's database URL, the sweep directory, the study name):
    a study that lives off the sweep directory gets copied into it (`StudyBackup`)."""
    from audiogan.sweep import study
    from audiogan.sweep.callbacks import ParetoCheckpoints, StudyBackup

    out: list[Any] = []
    if spec.multi_objective:
        out.append(ParetoCheckpoints(spec.objective_list))
    if study_location is not None and study.locate(*study_location)[1] is not None:
        out.append(StudyBackup(study_location))
    return out


def dirname(trial: Any) -> str:
    return trial_dirname(trial.trial_id)


def reporter(spec: SweepSpec, parameter_columns: list[str] | None = None) -> Any:
    from ray.tune import CLIReporter

    metrics = {o.metric: o.metric for o in spec.objective_list}
    metrics.update({CRITIC_STEPS: "critic_steps", "loss/wdist": "wdist", "time/step_s": "step_s"})
    # Conditional parameters are missing from some trials: Tune's table cannot show them.
    always = [k for k, d in spec.search.items() if not d.get("when")]
    return CLIReporter(metric_columns=metrics, parameter_columns=parameter_columns or always,
                       metric=spec.metric, mode=spec.mode, sort_by_metric=True,
                       max_report_frequency=30, max_column_length=14)
