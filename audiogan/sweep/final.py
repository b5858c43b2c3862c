"""The final stage of a sweep: a verdict that holds.

Trial-time evaluations are small (e.g. 500 samples, K = 20: NDB moves in steps of 0.05)
and every trial is one seed of one run. After the search, `run_final`:

1. scores again the top `final.top_k` trials by the selection rule, and the baseline trial,
   each at its best kept checkpoint (`final_eval.evaluate_final`: `n` samples on unseen
   seeds, K bins, a bootstrap interval for every metric, the real floor at a matched count);
2. picks the winner by the selection rule on those final values;
3. trains the winner's configuration and the baseline's again from scratch with
   `final.replicates` new seeds each, at the full budget, as Tune trials
   (`audiogan.sweep.replicates`), and scores each replicate as in 1 (the original trial is
   not a replicate);
4. writes `final/final.json`: every evaluation, the winner, the replicates with mean and
   t-interval per configuration, and verdicts: "better" only where the intervals
   separate, beside the named test (Welch's t-test over the replicates).

Every step is recorded before the next starts, so a killed driver resumes where it stopped
and nothing runs twice: one file per evaluation (`final/evaluations/<trial>.json`, reused
while its checkpoint and settings are unchanged, and a line in `final/log.jsonl` each time
one is computed), the replicate plan (`final/plan.json`, fixed once written), the
replicates' own Tune experiment, and `final.json` last.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Callable

import pandas as pd

from audiogan import storage
from audiogan.cluster.hooks import FaultHooks
from audiogan.errors import UserError
from audiogan.sweep.keys import FINAL_DIR, FINAL_EVAL, FINAL_FILE, LOOP, SESSION
from audiogan.sweep.objectives import Objective, rank, select
from audiogan.sweep.results import TrialSummary, load_trials, rank_trials
from audiogan.sweep.space import same_point
from audiogan.sweep.spec import FinalSpec, SweepSpec, baseline_point, probe_config

log = logging.getLogger(__name__)


def final_dir(sweep_dir: str) -> str:
    return storage.join(sweep_dir, FINAL_DIR)


def read_final(sweep_dir: str) -> dict[str, Any] | None:
    path = storage.join(final_dir(sweep_dir), FINAL_FILE)
    return storage.read_json(path) if storage.exists(path) else None


def baseline_trial(trials: list[TrialSummary], spec: SweepSpec) -> TrialSummary | None:
    if not spec.baseline:
        return None
    point = baseline_point(spec)
    return next((t for t in trials if same_point(t.params, point)), None)


def candidates(trials: list[TrialSummary], spec: SweepSpec, top_k: int
               ) -> list[tuple[TrialSummary, list[str]]]:
    """The top k trials by the selection rule (with a kept checkpoint), then the baseline."""
    ranked = [t for t in rank_trials(trials, spec.selection) if t.checkpoint]
    chosen = [(t, [f"top-{i + 1}"]) for i, t in enumerate(ranked[:top_k])]
    base = baseline_trial(trials, spec)
    if base is not None and base.checkpoint:
        for t, roles in chosen:
            if t.trial_id == base.trial_id:
                roles.append("baseline")
                break
        else:
            chosen.append((base, ["baseline"]))
    return chosen


def final_vector(record: dict[str, Any], objectives: tuple[Objective, ...]) -> dict[str, float] | None:
    from audiogan.sweep.final_eval import final_key

    values = {o.metric: (record["metrics"].get(final_key(o.metric)) or {}).get("value")
              for o in objectives}
    ok = all(v is not None and math.isfinite(v) for v in values.values())
    return values if ok else None


def evaluate_once(fdir: str, trial: TrialSummary, roles: list[str], data: str,
                  settings: dict[str, Any], evaluate: Callable[..., dict[str, Any]],
                  cache: dict[Any, Any]) -> dict[str, Any]:
    """The trial's final evaluation record: reused when already made for this checkpoint
    and these settings, else computed and written (with a line in the log)."""
    path = storage.join(fdir, "evaluations", f"{trial.trial_id}.json")
    if storage.exists(path):
        old = storage.read_json(path)
        if old.get("settings") == settings and old.get("checkpoint") == trial.checkpoint:
            return {**old, "roles": roles}
    log.info("final evaluation of trial %s (%s) at %s critic steps", trial.trial_id,
             ", ".join(roles), trial.kept.critic_steps)
    record = evaluate(trial.checkpoint, data, settings, cache)
    record.update({"trial_id": trial.trial_id, "roles": roles, "params": trial.params,
                   "settings": settings, "checkpoint": trial.checkpoint,
                   "trial_time": {"critic_steps": trial.kept.critic_steps,
                                  "vector": trial.kept.vector}})
    storage.write_json_atomic(path, record)
    _append(storage.join(fdir, "log.jsonl"), {"evaluated": trial.trial_id,
                                              "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return record


def _append(path: str, entry: dict[str, Any]) -> None:
    old = storage.read_bytes(path) if storage.exists(path) else b""
    storage.write_bytes_atomic(path, old + (json.dumps(entry) + "\n").encode())


def replicate_plan(fdir: str, spec: SweepSpec, settings: dict[str, Any],
                   winner: dict[str, Any], base: TrialSummary | None) -> dict[str, Any]:
    """Which configurations are replicated with which seeds: written once, then read."""
    from audiogan.sweep.replicates import entries

    path = storage.join(fdir, "plan.json")
    if storage.exists(path):
        plan = storage.read_json(path)
        if plan["settings"] != settings:
            raise UserError(f"the final: settings changed since the replicates were planned "
                            f"({path}); delete {fdir} to run the final stage again")
        return plan
    seed0 = probe_config(spec).train.seed
    seeds = [seed0 + 1 + i for i in range(int(settings["replicates"]))]
    sources = [("best", winner["trial_id"], winner["params"])]
    # When the baseline itself won, its configuration is replicated once (as the best).
    if spec.baseline and not (base is not None and base.trial_id == winner["trial_id"]):
        sources.append(("baseline", base.trial_id if base else "",
                        base.params if base else baseline_point(spec)))
    plan = {"settings": settings, "seeds": seeds, "original_seed": seed0,
            "entries": entries(sources, seeds) if seeds else []}
    storage.write_json_atomic(path, plan)
    return plan


def run_final(spec: SweepSpec, data: str, sweep_dir: str, *, local: bool = True,
              cluster_cpus: float = 1.0, settings: FinalSpec | None = None, loop: str = LOOP,
              session: str = SESSION, hooks: FaultHooks = FaultHooks(),
              final_eval: str = FINAL_EVAL) -> int:
    """The final stage (module docstring); returns how many replicates are unfinished."""
    from audiogan.sweep.trial import load_ref

    settings_d = (settings or spec.final_spec or FinalSpec()).to_dict()
    fdir = final_dir(sweep_dir)
    objectives, selection = spec.objective_list, spec.selection
    trials = load_trials(sweep_dir, objectives, selection=selection)
    chosen = candidates(trials, spec, settings_d["top_k"])
    if not chosen:
        log.warning("final stage: no trial has a checkpoint with every objective; nothing to do")
        return 0
    evaluate, cache = load_ref(final_eval), {}
    records = [evaluate_once(fdir, t, roles, data, settings_d, evaluate, cache)
               for t, roles in chosen]
    pick = select([final_vector(r, objectives) for r in records], objectives, selection)
    if pick is None:
        raise UserError("final stage: no final evaluation has every objective")
    winner = records[pick]
    base = baseline_trial(trials, spec)
    plan = replicate_plan(fdir, spec, settings_d, winner, base)
    replicas: list[dict[str, Any]] = []
    if plan["entries"]:
        from audiogan.sweep.replicates import load_replicates, run_replicates

        unfinished = run_replicates(spec, data, sweep_dir, plan["entries"], local=local,
                                    cluster_cpus=cluster_cpus, loop=loop, session=session,
                                    hooks=hooks)
        if unfinished:
            return unfinished
        for t in load_replicates(spec, sweep_dir):
            if t.checkpoint:
                role = t.replicate["role"]
                replicas.append(evaluate_once(fdir, t, [f"replicate of {role}"], data,
                                              settings_d, evaluate, cache))
    doc = summarize(spec, settings_d, records, winner, plan, replicas)
    storage.write_json_atomic(storage.join(fdir, FINAL_FILE), doc)
    return 0


# -- the summary: intervals, replicates, verdicts ---------------------------------------------
def verdict(a: tuple[float, float], b: tuple[float, float], mode: str) -> str:
    """'better' / 'worse' when a's interval lies wholly on one side of b's, else
    'not separated' (a and b are (lo, hi))."""
    if any(v is None or not math.isfinite(v) for v in (*a, *b)):
        return "not separated"
    a_better = a[1] < b[0] if mode == "min" else a[0] > b[1]
    a_worse = a[0] > b[1] if mode == "min" else a[1] < b[0]
    return "better" if a_better else "worse" if a_worse else "not separated"


def mean_interval(values: list[float], confidence: float) -> dict[str, Any]:
    """Mean over seeds with a Student-t interval (n - 1 degrees of freedom)."""
    from scipy import stats

    vals = [v for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "sd": None, "n": 0}
    mean = sum(vals) / n
    if n < 2:
        return {"mean": mean, "lo": None, "hi": None, "sd": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "sd": sd, "n": n}


def welch_p(a: list[float], b: list[float]) -> float | None:
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or (len(set(a)) == 1 and len(set(b)) == 1):
        return None
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarize(spec: SweepSpec, settings: dict[str, Any], records: list[dict[str, Any]],
              winner: dict[str, Any], plan: dict[str, Any],
              replicas: list[dict[str, Any]]) -> dict[str, Any]:
    from audiogan.sweep.final_eval import METHOD, final_key

    objectives = spec.objective_list
    base = next((r for r in records if "baseline" in r["roles"]), None)
    comparison = None
    if base is not None and base is not winner:
        comparison = {"best": winner["trial_id"], "baseline": base["trial_id"], "by_metric": {}}
        for o in objectives:
            a, b = winner["metrics"][final_key(o.metric)], base["metrics"][final_key(o.metric)]
            comparison["by_metric"][o.metric] = {
                "best": a, "baseline": b, "mode": o.mode,
                "verdict": verdict((a["lo"], a["hi"]), (b["lo"], b["hi"]), o.mode)}
    configs = []
    for role in ("best", "baseline"):
        runs = [r for r in replicas if r["roles"] == [f"replicate of {role}"]]
        if not runs:
            continue
        keys = sorted({k for r in runs for k in r["metrics"]})
        configs.append({
            "role": role, "source": next(e["source"] for e in plan["entries"] if e["role"] == role),
            "params": next(e["params"] for e in plan["entries"] if e["role"] == role),
            "runs": [{"trial_id": r["trial_id"], "seed": r["params"].get("train.seed"),
                      "checkpoint": r["checkpoint"],
                      "values": {k: r["metrics"][k]["value"] for k in r["metrics"]},
                      "intervals": r["metrics"], "matched": r.get("matched")} for r in runs],
            "summary": {k: mean_interval([r["metrics"].get(k, {}).get("value") for r in runs],
                                         settings["confidence"]) for k in keys}})
    replicate_cmp = {}
    if len(configs) == 2:
        best_c, base_c = configs
        for o in objectives:
            k = final_key(o.metric)
            a, b = best_c["summary"].get(k, {}), base_c["summary"].get(k, {})
            replicate_cmp[o.metric] = {
                "mode": o.mode, "verdict": verdict((a.get("lo"), a.get("hi")),
                                                   (b.get("lo"), b.get("hi")), o.mode),
                "test": "Welch t-test", "p": welch_p(
                    [r["values"].get(k) for r in best_c["runs"]],
                    [r["values"].get(k) for r in base_c["runs"]])}
    return {"settings": settings, "method": METHOD,
            "objectives": [{"metric": o.metric, "mode": o.mode} for o in objectives],
            "select": spec.select, "winner": winner["trial_id"],
            "winner_params": winner["params"], "baseline": base["trial_id"] if base else None,
            "evaluations": records, "comparison": comparison,
            "replicates": {"seeds": plan["seeds"], "original_seed": plan["original_seed"],
                           "configs": configs, "comparison": replicate_cmp},
            "date": time.strftime("%Y-%m-%d")}


def with_final_columns(board: pd.DataFrame, doc: dict[str, Any] | None) -> pd.DataFrame:
    """The leaderboard with each finally evaluated trial's role and final values."""
    if doc is None or board.empty:
        return board
    from audiogan.sweep.final_eval import final_key

    board = board.copy()
    by_id = {r["trial_id"]: r for r in doc["evaluations"]}
    board["final role"] = [",".join(by_id[t]["roles"]) if t in by_id else ""
                           for t in board["trial_id"]]
    for o in doc["objectives"]:
        key = final_key(o["metric"])
        for part in ("value", "lo", "hi"):
            col = key if part == "value" else f"{key} {part}"
            board[col] = [by_id[t]["metrics"].get(key, {}).get(part) if t in by_id else None
                          for t in board["trial_id"]]
    return board


def ranked_final(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The finally evaluated search trials, best first by the rule on final values."""
    from audiogan.sweep.objectives import objectives_of, selection_of

    objectives = objectives_of(doc["objectives"])
    order = rank([final_vector(r, objectives) for r in doc["evaluations"]], objectives,
                 selection_of(doc["select"]))
    return [doc["evaluations"][i] for i in order]

