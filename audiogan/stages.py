"""Run a plan of `audiogan` commands that resumes: `make demo` and the experiment plans.

A stage is one `audiogan` command with a marker file that exists only once it completed.
A stage whose marker exists and whose command, input files (a sweep's YAML) and upstream
stamps are unchanged is skipped, so a re-run only redoes what changed or did not finish;
an unfinished training run picks up from its latest checkpoint (`audiogan train` resumes
by itself). Up to `concurrency` stages run at once, each as its own process, in plan order
as their upstream stages complete; a stage marked `alone` runs with nothing beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from audiogan import storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    argv: tuple[str, ...]
    done_marker: str      # a file that exists only when the stage completed
    after: tuple[str, ...] = ()
    alone: bool = False   # runs with nothing beside it, so its time is its own
    inputs: tuple[str, ...] = ()  # files whose edits rerun the stage (a sweep's YAML)


def _stamp(stage: Stage, stamps: dict[str, str]) -> str:
    """The command, the upstream stamps and the contents of the stage's `inputs`."""
    parts: list = [stage.argv, [stamps.get(a, "") for a in stage.after]]
    if stage.inputs:  # (stages without inputs keep the stamps they had before inputs existed)
        parts.append([hashlib.sha256(storage.read_bytes(p)).hexdigest() if os.path.isfile(p)
                      else "" for p in stage.inputs])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _record(stamp_path: str, name: str, stamp: str) -> None:
    """Add one stamp to the file as it is now: two plans sharing a work directory (say, two
    phases of an experiment at once) keep each other's stamps."""
    with storage.exclusive_lock(stamp_path + ".lock"):  # read-modify-write, one at a time
        on_disk = storage.read_json(stamp_path) if os.path.exists(stamp_path) else {}
        on_disk.pop(name, None)
        on_disk[name] = stamp
        storage.write_json_atomic(stamp_path, on_disk)


def run_stages(plan: Sequence[Stage], stamp_path: str, *, concurrency: int = 1,
               python: str = sys.executable,
               prepare: Callable[[Stage], list[str]] | None = None,
               spans: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """Run every stage not already done; returns seconds per stage (0.0 = skipped).
    `prepare(stage)` may return the argv to run instead of `stage.argv` (e.g. + --resume).
    `spans`, if given, receives each stage's (start, end) in seconds since the call."""
    t_plan = time.perf_counter()
    stamps: dict[str, str] = storage.read_json(stamp_path) if os.path.exists(stamp_path) else {}
    seconds: dict[str, float] = {}
    pending = list(plan)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    done: set[str] = set()
    names = {s.name: i for i, s in enumerate(plan, 1)}
    while pending or running:
        for stage in list(pending):
            if len(running) >= concurrency:
                break
            if any(a not in done for a in stage.after):
                continue
            stamp = _stamp(stage, stamps)
            up_to_date = stamps.get(stage.name) == stamp and os.path.exists(stage.done_marker)
            if not up_to_date and running and (
                    stage.alone or any(plan[names[r] - 1].alone for r in running)):
                break  # keeps plan order: nothing overtakes a stage that waits to run alone
            pending.remove(stage)
            if up_to_date:
                print(f"[{names[stage.name]}/{len(plan)}] {stage.name}: up to date, skipped",
                      flush=True)
                seconds[stage.name] = 0.0
                done.add(stage.name)
                continue
            argv = prepare(stage) if prepare else list(stage.argv)
            print(f"[{names[stage.name]}/{len(plan)}] {stage.name}: audiogan {shlex.join(argv)}",
                  flush=True)
            proc = subprocess.Popen([python, "-m", "audiogan", *argv])
            running[stage.name] = (proc, time.perf_counter())
        if not running:
            if pending:  # nothing can start: an upstream stage is missing from the plan
                raise SystemExit(f"stages {[s.name for s in pending]} wait on stages not run")
            break
        time.sleep(0.5)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            seconds[name] = time.perf_counter() - t0
            if spans is not None:
                spans[name] = (t0 - t_plan, time.perf_counter() - t_plan)
            if proc.returncode != 0:
                for other, _ in running.values():
                    other.terminate()
                raise SystemExit(f"stage '{name}' failed (exit {proc.returncode}); run the same "
                                 "command again to continue from it")
            stage = plan[names[name] - 1]
            stamps.pop(name, None)
            stamps[name] = _stamp(stage, stamps)
            _record(stamp_path, name, stamps[name])
            done.add(name)
            print(f"    {name} done in {seconds[name]:.1f} s", flush=True)
    return seconds
