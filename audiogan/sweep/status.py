"""`audiogan status SWEEP_DIR [--watch SECONDS]`: the table of a sweep started elsewhere.

Read from the sweep directory (local path or bucket URI) alone: `sweep.yaml` for the
objectives and the budget, Tune's experiment state for each trial's state, and each
trial's `result.json` (every report, appended as it happens) for its critic steps and
evaluations. No Ray instance is started or joined, so it works from any machine that can
read the directory, while the sweep runs and after it ended. A trial the driver started
after its last experiment-state save shows as STARTING (its directory exists). The
`last report` column is how long ago a trial last reported: a RUNNING trial whose report
is old belongs to a driver that died (`audiogan sweep ... --resume` continues it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import yaml

from audiogan import storage
from audiogan.errors import UserError
from audiogan.sweep.keys import FINAL_DIR, FINAL_FILE, SEARCH_DONE, SPEC_FILE, TUNER_STATE
from audiogan.sweep.spec import SweepSpec, baseline_point, parse_spec


def read_spec(sweep: str) -> SweepSpec:
    """The resolved spec a sweep directory (or bucket) holds; one-line errors."""
    path = storage.join(sweep, SPEC_FILE)
    if not storage.exists(path):
        raise UserError(f"'{sweep}' is not a sweep directory (no {SPEC_FILE})")
    try:
        doc = yaml.safe_load(storage.read_bytes(path).decode()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: not a sweep spec (a YAML mapping)")
    doc.pop("resolved", None)
    return parse_spec(doc, where=SPEC_FILE)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _last_report(history: Any) -> float:
    """The time of the trial's last report (0 if none)."""
    if "timestamp" not in history or not len(history):
        return 0.0
    return float(history["timestamp"].max())


def _age(history: Any, now: float) -> str:
    if not _last_report(history):
        return "-"
    seconds = now - _last_report(history)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _state(t: Any, max_critic_steps: int, base: dict[str, Any] | None) -> str:
    from audiogan.sweep.results import stopped_early
    from audiogan.sweep.space import same_point

    state = t.status
    if state == "PENDING" and _last_report(t.history):
        # Tune saves a running trial as PENDING (so that a resume restarts it); one that
        # reported has started. `last report` tells whether its driver still lives.
        state = "RUNNING"
    if stopped_early(t, max_critic_steps):
        state += " (ASHA stop)"
    if t.replicate:
        state += f" [replicate of {t.replicate['role']}, seed {t.replicate['seed']}]"
    elif base is not None and same_point(t.params, base):
        state += " [baseline]"
    return state


def rows(sweep: str, spec: SweepSpec, now: float | None = None) -> list[dict[str, str]]:
    """One row per trial (search trials, then the final stage's replicates)."""
    from audiogan.sweep.replicates import load_replicates
    from audiogan.sweep.results import load_trials

    now = time.time() if now is None else now
    objectives = spec.objective_list
    trials = load_trials(sweep, objectives, selection=spec.selection)
    known = {t.trial_id for t in trials}
    replicas = []
    if storage.exists(storage.join(sweep, FINAL_DIR, "replicates", TUNER_STATE)):
        replicas = load_replicates(spec, sweep)
    base = baseline_point(spec) if spec.baseline else None
    out = []
    for t in [*trials, *replicas]:
        row = {"trial": t.trial_id, "state": _state(t, spec.max_critic_steps, base),
               "critic steps": f"{t.last_critic_steps}/{spec.max_critic_steps}"}
        for o in objectives:
            row[f"{o.metric} ({o.mode})"] = _fmt((t.vector or {}).get(o.metric))
        row["at"] = _fmt(t.best_critic_steps)
        row.update({k: _fmt(v) for k, v in t.params.items()})
        row["last report"] = _age(t.history, now)
        out.append(row)
    out += [{"trial": d[len("trial_"):], "state": "STARTING"} for d in _trial_dirs(sweep)
            if d[len("trial_"):] not in known]
    return out


def _trial_dirs(sweep: str) -> list[str]:
    if storage.is_uri(sweep):
        return []  # listing a bucket costs requests; its experiment state is enough there
    return sorted(d for d in os.listdir(sweep) if d.startswith("trial_")
                  and os.path.isdir(os.path.join(sweep, d)))


def _table(rows_: list[dict[str, str]]) -> str:
    cols: list[str] = []
    for r in rows_:
        cols += [c for c in r if c not in cols]
    width = {c: max(len(c), *(len(r.get(c, "")) for r in rows_)) for c in cols}
    line = lambda r: "  ".join(r.get(c, "").ljust(width[c]) for c in cols).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in cols}), *map(line, rows_)])


def _stage(sweep: str, spec: SweepSpec, n_rows: int) -> str:
    if storage.exists(storage.join(sweep, FINAL_DIR, FINAL_FILE)):
        doc = storage.read_json(storage.join(sweep, FINAL_DIR, FINAL_FILE))
        return f"done: final stage winner trial {doc.get('winner')}"
    if storage.exists(storage.join(sweep, SEARCH_DONE)):
        return "search done" + ("; final stage running or not started" if spec.final else "")
    return f"search running or interrupted ({n_rows} of {spec.num_samples} trials started)"


def status_text(sweep: str, now: float | None = None) -> str:
    spec = read_spec(sweep)
    head = f"sweep {sweep}: "
    if not storage.exists(storage.join(sweep, TUNER_STATE)):
        return head + "no trials yet (the sweep has not started its search)"
    table = rows(sweep, spec, now)
    objectives = ", ".join(f"{o.metric} ({o.mode})" for o in spec.objective_list)
    return (f"{head}{_stage(sweep, spec, len(table))}; objectives {objectives}; budget "
            f"{spec.max_critic_steps} critic steps per trial{_saved(sweep, now)}\n"
            f"{_table(table)}")


def _saved(sweep: str, now: float | None) -> str:
    """When Tune last saved the trial states (it saves them every few seconds to minutes,
    so a trial that just started can still read PENDING); local directories only."""
    if storage.is_uri(sweep):
        return ""
    import glob

    saves = glob.glob(os.path.join(sweep, "experiment_state-*.json"))
    if not saves:
        return ""
    age = (time.time() if now is None else now) - max(os.path.getmtime(p) for p in saves)
    return f"; states as Tune saved them {age:.0f} s ago"


def _done(sweep: str, spec: SweepSpec) -> bool:
    if spec.final is not None:
        return storage.exists(storage.join(sweep, FINAL_DIR, FINAL_FILE))
    return storage.exists(storage.join(sweep, SEARCH_DONE))


def cli_main(args: argparse.Namespace) -> int:
    sweep = args.sweep if storage.is_uri(args.sweep) else os.path.abspath(args.sweep)
    if not storage.is_dir(sweep):
        raise UserError(f"sweep '{args.sweep}' not found")
    if args.watch is not None and args.watch <= 0:
        raise UserError(f"--watch takes a positive number of seconds, got {args.watch}")
    spec = read_spec(sweep)
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    while True:
        sys.stdout.write(clear + status_text(sweep) + "\n")
        sys.stdout.flush()
        if args.watch is None or _done(sweep, spec):
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0
