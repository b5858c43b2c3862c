"""The final-evaluation part of a sweep report, read from `best.json` (the `final` block
`audiogan best` copies from the sweep's `final/final.json`): never a retyped number.

Values are shown as `value [lo, hi]` (the bootstrap interval of one checkpoint's final
evaluation) or `mean [lo, hi]` over seed replicates (Student-t interval); a difference is
called "better" only where the intervals separate, beside the named test.
"""

from __future__ import annotations

from typing import Any


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _interval(rec: dict[str, Any] | None, value: str = "value") -> str:
    if not rec or rec.get(value) is None:
        return "-"
    return f"{_num(rec[value])} [{_num(rec.get('lo'))}, {_num(rec.get('hi'))}]"


def _key(metric: str, floor: bool = False) -> str:
    name = metric.split("/", 1)[1]
    return f"final/floor/{name}" if floor else f"final/eval/{name}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows], ""]


def final_lines(best_json: dict[str, Any]) -> list[str]:
    final = best_json.get("final")
    if not final:
        return []
    s = final["settings"]
    metrics = [o["metric"] for o in final["objectives"]]
    lines = ["### Final evaluation (from `best.json`)", "",
             f"Each checkpoint scored again: n = {s['n']} generated examples on seeds "
             f"{s['eval_seed']}..{s['eval_seed'] + s['n'] - 1} (unseen in training), NDB with "
             f"K = {s['ndb_k']} bins from the training split, {s['bootstrap']} bootstrap draws, "
             f"{s['confidence']:.0%} intervals ({final['method']}). Winner by the selection rule "
             f"`{final['select']}`: trial `{final['winner']}`.", ""]
    rows = [[f"`{r['trial_id']}`", ", ".join(r["roles"]),
             _num((r.get("trial_time") or {}).get("critic_steps")),
             *[_interval(r["metrics"].get(_key(m))) for m in metrics]]
            for r in final["evaluations"]]
    lines += _table(["trial", "role", "critic steps", *[f"`{m}` (n = {s['n']})" for m in metrics]],
                    rows)
    matched = [r for r in final["evaluations"] if r.get("matched")]
    if matched:
        lines += ["Model and real floor at the same count (the held-out split's size, when "
                  "smaller than n):", ""]
        rows = [[f"`{r['trial_id']}`", _num(r["matched"]["n"]),
                 *[f"{_interval(r['matched']['model'].get(_key(m)))} vs "
                   f"{_interval(r['matched']['floor'].get(_key(m, floor=True)))}" for m in metrics]]
                for r in matched]
        lines += _table(["trial", "N", *[f"`{m}`: model vs real floor" for m in metrics]], rows)
    cmp = final.get("comparison")
    if cmp:
        lines += [f"- Best `{cmp['best']}` against the baseline `{cmp['baseline']}` (one "
                  f"checkpoint each): " + "; ".join(
                      f"`{m}` {c['verdict']} ({_interval(c['best'])} vs {_interval(c['baseline'])})"
                      for m, c in cmp["by_metric"].items()) + ".", ""]
    reps = final.get("replicates") or {}
    if reps.get("configs"):
        lines += [f"### Seed replicates (trained again from scratch with seeds {reps['seeds']}; "
                  f"the original trial, seed {reps['original_seed']}, is not one of them)", ""]
        rows = [[c["role"], f"`{c['source']}`", str(len(c["runs"])),
                 *[_interval(c["summary"].get(_key(m)), "mean") for m in metrics]]
                for c in reps["configs"]]
        lines += _table(["config", "from trial", "runs",
                         *[f"`{m}` mean [95% t-interval]" for m in metrics]], rows)
        for m, c in (reps.get("comparison") or {}).items():
            p = "-" if c.get("p") is None else f"{c['p']:.3g}"
            lines.append(f"- `{m}`: best vs baseline over seeds: **{c['verdict']}** "
                         f"(intervals; {c['test']} p = {p}).")
        lines.append("")
    return lines
