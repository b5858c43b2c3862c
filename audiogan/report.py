"""Markdown reports built only from the records the commands wrote (never retyped numbers).

`write_demo_report` reads, per model, the `audiogan best` output (leaderboard.csv,
best.json, best_config.yaml, plots/), `audiogan evaluate`'s metrics.json (model beside
the real floor) and `audiogan sample`'s samples.json (files, rendering backend).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import time
from typing import Any

MODELS = (("pianogan", "PianoGAN (demo piano MIDI)"), ("spectogan", "SpectoGAN (demo spoken digits)"))


def _rel(path: str, start: str) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def markdown_table(rows: list[dict[str, Any]], columns: list[str], limit: int = 20) -> str:
    if not rows:
        return "_(none)_\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    if len(rows) > limit:
        lines.append(f"\n_({len(rows) - limit} more rows in the CSV)_")
    return "\n".join(lines) + "\n"


def _read_csv(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _read_json(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _metrics_table(result: dict[str, Any]) -> str:
    if not result:
        return "_(no evaluation found)_\n"
    rows = [{"metric": k, "best checkpoint": v, f"real floor ({result.get('floor_split')})":
             result.get("floor", {}).get(k)} for k, v in result.get("metrics", {}).items()]
    cols = ["metric", "best checkpoint", f"real floor ({result.get('floor_split')})"]
    head = (f"Step {result.get('step')}, n = {result.get('n_samples')} samples, "
            f"K = {result.get('ndb_k')} bins (`{_rel(result.get('checkpoint', ''), os.getcwd())}`)\n\n")
    return head + markdown_table(rows, cols)


def _model_section(out: str, family: str, title: str) -> list[str]:
    best = os.path.join(out, "best", family)
    lines = [f"## {title}", ""]
    board = _read_csv(os.path.join(best, "leaderboard.csv"))
    best_json = _read_json(os.path.join(best, "best.json"))
    if best_json:
        lines += [f"Best trial: `{best_json.get('trial_id')}`, objective "
                  f"`{best_json.get('metric')}` = {_fmt(best_json.get('best_value'))} "
                  f"({best_json.get('mode')}) at critic step "
                  f"{_fmt(best_json.get('best_critic_steps'))}.", ""]
    lines += ["### Leaderboard (from `leaderboard.csv`)", ""]
    cols = list(board[0].keys()) if board else []
    lines += [markdown_table(board, cols), ""]
    lines += ["### Best checkpoint against the real floor (from `metrics.json`)", ""]
    lines += [_metrics_table(_read_json(os.path.join(best, "metrics.json"))), ""]
    plots_dir = os.path.join(best, "plots")
    if os.path.isdir(plots_dir):
        lines += ["### Plots", ""]
        for name in sorted(os.listdir(plots_dir)):
            if name.endswith(".png"):
                lines.append(f"![{name}]({_rel(os.path.join(plots_dir, name), out)})")
        lines.append("")
    samples = _read_json(os.path.join(best, "samples", "samples.json"))
    if samples:
        lines += ["### Samples", "",
                  f"Rendering backend: **{samples.get('rendering_backend')}**; seeds "
                  f"{samples.get('seeds')}; config hash `{samples.get('config_hash')}`.", ""]
        for f in samples.get("files", []):
            name = f if isinstance(f, str) else f.get("path", "")
            full = name if os.path.isabs(name) else os.path.join(best, "samples", name)
            if name.endswith(".png"):
                lines.append(f"![{os.path.basename(name)}]({_rel(full, out)})")
            else:
                lines.append(f"- [{os.path.basename(name)}]({_rel(full, out)})")
        lines.append("")
    return lines


def write_demo_report(out: str, stage_seconds: dict[str, float], total_s: float) -> str:
    from audiogan.demo_run import stages

    lines = ["# audiogan demo report", "",
             f"Made by `make demo` on {time.strftime('%Y-%m-%d %H:%M')} in {total_s:.0f} s "
             "(stages skipped as up to date show 0 s). Demo data are small and synthetic "
             "(music21 corpus scores, espeak-ng digits), and the smoke sweeps are tiny: the "
             "numbers show the pipeline works, not model quality.", ""]
    for family, title in MODELS:
        lines += _model_section(out, family, title)
    lines += ["## Stages and commands to reproduce", "",
              "| stage | seconds | command |", "|---|---|---|"]
    for stage in stages(out):
        lines.append(f"| {stage.name} | {stage_seconds.get(stage.name, 0.0):.1f} | "
                     f"`audiogan {shlex.join(stage.argv)}` |")
    path = os.path.join(out, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
