"""`audiogan train`: `train_loop` in a Ray Train V2 TorchTrainer (DDP), resumable.

The run directory is `--out` = `RunConfig(storage_path=dirname(out), name=basename(out))`:
Ray keeps its checkpoints (`checkpoint_<step>`) and run state there, we add `config.yaml`
(written before training) and `tensorboard/`. Re-running the same command with the same
`--out` makes Ray restore its checkpoint manager and hand the latest checkpoint to the
workers: training continues from that step.

Checkpoint keeping (Ray 2.60 `CheckpointConfig`, read in ray/train/v2/.../checkpoint_manager.py):
with `num_to_keep=K` and a score attribute, checkpoints are kept sorted by score and all but
the best K are deleted -- except the latest, which is never deleted. So K = train.keep_best
gives exactly "the best K by the objective plus the latest". The objective is checked
against the metric registry and the dataset before Ray starts.

A non-finite loss ends the run with one line and exit code 1 (a failed run, not a usage
mistake, which is exit 2). The worker function stops cleanly and leaves a marker, so
`FailureConfig` does not restart a diverged run max_failures times.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
from typing import Any, Iterator

from audiogan import storage
from audiogan.builders import build_label_map, check_objective_available, train_config_from_args
from audiogan.cluster.hooks import FaultHooks
from audiogan.config import Config
from audiogan.data import shards
from audiogan.errors import UserError
from audiogan.train.loop import NonFiniteLossError, train_loop

log = logging.getLogger("audiogan.train")

NONFINITE_MARKER = "NONFINITE.json"
KINDS = {"pianogan": "notes", "spectogan": "spectrogram"}


def _worker_fn(config: dict[str, Any]) -> None:
    """What each TorchTrainer worker runs: the loop, with divergence turned into a marker."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("audiogan").setLevel(logging.INFO)
    try:
        train_loop(config, hooks=FaultHooks.from_dict(config.get("hooks")))
    except NonFiniteLossError as exc:
        import ray.train

        if ray.train.get_context().get_world_rank() == 0 and config.get("run_dir"):
            storage.write_json_atomic(storage.join(config["run_dir"], NONFINITE_MARKER),
                                      {"message": str(exc)})
        # Return normally: every rank saw the same loss (all-reduced) and stops here.


def score_attribute(cfg: Config) -> tuple[str, str]:
    return cfg.train.objective, cfg.objective_mode


def build_trainer(cfg: Config, data: str, name: str, storage_path: str,
                  hooks: FaultHooks = FaultHooks()) -> Any:
    """A TorchTrainer running `train_loop` with cfg's workers, checkpoints and retries."""
    import ray.train
    from ray.train.torch import TorchTrainer

    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")  # runs in the dashboard
    storage_path = storage_path if storage.is_uri(storage_path) else os.path.abspath(storage_path)
    ray_path, ray_fs = storage.for_ray(storage_path)
    resources = {"CPU": cfg.compute.cpus_per_worker}
    if cfg.compute.gpu:
        resources["GPU"] = 1
    attribute, order = score_attribute(cfg)
    loop_config = {"cfg": cfg.to_dict(), "data": data,
                   "run_dir": storage.join(storage_path, name), "hooks": hooks.to_dict()}
    return TorchTrainer(
        train_loop_per_worker=_worker_fn,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.compute.workers,
                                               use_gpu=cfg.compute.gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name, storage_path=ray_path, storage_filesystem=ray_fs,
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=cfg.train.keep_best, checkpoint_score_attribute=attribute,
                checkpoint_score_order=order),
            failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures)),
    )


def check_data_matches(cfg: Config, manifest: dict[str, Any], data: str) -> None:
    want = KINDS[cfg.model.family]
    if manifest.get("kind") != want:
        raise UserError(f"preset '{cfg.preset}' trains on {want} data, '{data}' holds "
                        f"{manifest.get('kind')}")
    if want == "spectrogram":
        has = manifest.get("representation", "log_magnitude")
        if has != cfg.data.representation:
            hint = ("preprocess with --representation complex" if cfg.data.representation ==
                    "complex" else "use a spectogan-complex preset")
            raise UserError(f"preset '{cfg.preset}' trains on {cfg.data.representation} "
                            f"spectrograms, '{data}' holds {has} ones ({hint})")
    build_label_map(cfg, manifest, data)  # model.conditional: labels usable (one-line errors)


def _check_same_model(run_dir: str, cfg: Config) -> None:
    """Resuming into a run directory made with another model would fail at load time."""
    path = storage.join(run_dir, "config.yaml")
    if not storage.exists(path):
        return
    import yaml

    old = Config.from_dict(yaml.safe_load(storage.read_bytes(path).decode()))
    if old.model != cfg.model:
        raise UserError(f"'{run_dir}' holds a run of another model ({old.preset}, d={old.model.d});"
                        " choose another --out")


def _wrapped(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception Ray wrapped inside it (causes, contexts, worker failures)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend([e.__cause__, e.__context__, getattr(e, "cause", None)])
        stack.extend(getattr(e, "worker_failures", {}).values())


def unwrap_failure(exc: BaseException) -> str | None:
    """The one-line message of a NonFiniteLossError inside Ray's error wrapping, if any."""
    for e in _wrapped(exc):
        if isinstance(e, NonFiniteLossError):
            return str(e)
        text = str(e)
        if "NonFiniteLossError" in text and "non-finite loss at step" in text:
            return text[text.index("non-finite loss at step"):].splitlines()[0]
    return None


_OS_ERROR_LINE = re.compile(r"^OSError: (.+)$", re.MULTILINE)


def storage_failure(exc: BaseException) -> str | None:
    """The first line of an OSError a worker raised (object storage that still failed after
    its retries, a full disk), inside Ray's error wrapping; None if there is none."""
    for e in _wrapped(exc):
        found = _OS_ERROR_LINE.findall(str(e))
        if found:  # Ray's wrappers carry the worker's traceback as text
            return found[-1].strip()
        if isinstance(e, OSError):  # raised here, not in a worker
            return (str(e).strip().splitlines() or [type(e).__name__])[0]
    return None


def _print_summary(run_dir: str, result: Any, cfg: Config) -> dict[str, Any]:
    attribute, order = score_attribute(cfg)
    best = None
    for checkpoint, metrics in getattr(result, "best_checkpoints", None) or []:
        value = metrics.get(attribute)
        if value is None or value != value:
            continue
        if best is None or (value < best[1] if order == "min" else value > best[1]):
            best = (checkpoint.path, value, metrics)
    latest = result.checkpoint.path if result.checkpoint is not None else None
    metrics = dict(result.metrics or {})
    if best is None and latest:
        best = (latest, metrics.get(attribute), metrics)
    summary = {"run_dir": run_dir, "steps": metrics.get("progress/step"),
               "critic_steps": metrics.get("progress/critic_steps"),
               "latest_checkpoint": latest, "best_checkpoint": best[0] if best else None,
               "best_by": attribute, "best_value": best[1] if best else None,
               "final_metrics": metrics}
    print(f"done: {summary['steps']} steps ({summary['critic_steps']} critic steps) in {run_dir}")
    if best:
        print(f"best checkpoint ({attribute}={best[1]}): {best[0]}")
    keys = [k for k in sorted(metrics) if k.startswith(("loss/", "eval/", "floor/"))]
    for key in keys:
        print(f"  {key:<22} {metrics[key]:.5g}")
    return summary


def _interrupted(out: str) -> tuple[int, str]:
    return 130, (f"audiogan: interrupted; run the same command again to resume from the "
                 f"latest checkpoint in {out}")


def cli_main(args: argparse.Namespace) -> int:
    from audiogan.cluster.start import ray_session

    cfg = train_config_from_args(args)
    if not args.data or not args.out:
        raise UserError("audiogan train needs --data DIR (preprocessed) and --out DIR")
    # Ray workers run in their own working directory: pass the data path absolute.
    args.data = args.data if storage.is_uri(args.data) else os.path.abspath(args.data)
    manifest = shards.read_manifest(args.data)  # UserError without a manifest
    check_data_matches(cfg, manifest, args.data)
    check_objective_available(cfg, args.data)
    out = args.out if storage.is_uri(args.out) else os.path.abspath(args.out)
    storage_path, name = storage.split(out)
    storage.check_writable(out, "--out")
    _check_same_model(out, cfg)
    storage.makedirs(out)
    storage.write_bytes_atomic(storage.join(out, "config.yaml"), cfg.to_yaml().encode())
    marker = storage.join(out, NONFINITE_MARKER)
    if storage.exists(marker):  # left by an earlier diverged attempt
        fs, path = storage.resolve(marker)
        fs.delete_file(path)
    print(f"training {cfg.preset} ({cfg.compute.workers} worker(s), "
          f"{cfg.train.total_steps} steps) -> {out}", flush=True)

    cpus = max(os.cpu_count() or 1, cfg.compute.workers * cfg.compute.cpus_per_worker)
    with ray_session(args.address, cpus):
        rc, message = _fit(cfg, args.data, out, name, storage_path, marker, args.fault_hooks)
    # Printed after the shutdown: Ray streams the workers' and the controller's log lines to
    # this terminal until then, and the one-line error must be the last thing a user reads.
    if message:
        print(message, file=sys.stderr)
    return rc


def _fit(cfg: Config, data: str, out: str, name: str, storage_path: str, marker: str,
         hooks: FaultHooks) -> tuple[int, str]:
    """Run the TorchTrainer; (exit code, the one line to print last, or "")."""
    from audiogan.cluster.compat import on_trainer_sigint

    trainer = build_trainer(cfg, data, name, storage_path, hooks=hooks)
    # `fit()` installs Ray's own SIGINT handler (it aborts the run gracefully, then the
    # process used to exit 1 with no word): note the Ctrl-C so the CLI can say what
    # happened and exit 130 like any interrupted command.
    interrupted = threading.Event()
    on_trainer_sigint(trainer, interrupted.set)
    try:
        result = trainer.fit()
    except BaseException as exc:  # Ray wraps worker errors; surface ours as one line
        if interrupted.is_set():
            return _interrupted(out)
        if not isinstance(exc, Exception):
            raise
        line = unwrap_failure(exc)
        if line is not None:
            return 1, f"audiogan: error: {line}"
        io_line = storage_failure(exc)
        if io_line is None:
            raise
        return 1, (f"audiogan: error: {io_line}; once the storage answers, run the same "
                   f"command again: it resumes from the latest complete checkpoint in {out}")
    if interrupted.is_set():
        return _interrupted(out)
    if storage.exists(marker):
        message = json.loads(storage.read_bytes(marker).decode())["message"]
        return 1, f"audiogan: error: {message}"
    summary = _print_summary(out, result, cfg)
    storage.write_json_atomic(storage.join(out, "summary.json"), summary)
    return 0, ""
