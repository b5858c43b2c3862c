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


def _number(v: Any) -> Any:
    """CSV cells back to numbers, so tables show 4 significant digits."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and "." not in str(v) else f


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
        params = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in best_json.get("params", {}).items())
        lines += [f"Best trial (of {best_json.get('trials')}, over {best_json.get('scope')}): "
                  f"`{best_json.get('trial_id')}`, `{best_json.get('metric')}` = "
                  f"{_fmt(best_json.get('value'))} ({best_json.get('mode')}) at critic step "
                  f"{_fmt(best_json.get('at_critic_steps'))}; {params}.", ""]
    lines += ["### Leaderboard (from `leaderboard.csv`)", ""]
    cols = [c for c in (board[0].keys() if board else []) if c != "checkpoint"]
    lines += [markdown_table([{k: _number(v) for k, v in row.items()} for row in board], cols), ""]
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
             "(music21 corpus scores, espeak-ng digits) and the demo sweeps are small: the "
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


# -- results/README.md: one table over the committed benchmark JSON --------------------------
def _bench_rows(name: str, d: dict[str, Any]) -> list[dict[str, Any]]:
    """(measure, baseline, ratio, target) rows read from one `audiogan bench` JSON."""
    rows: list[dict[str, Any]] = []
    date = d.get("date", "")
    if name == "preprocess":
        for ds, r in d.get("datasets", {}).items():
            fps = r["files_per_s"]
            rows.append({"measure": f"preprocess {ds}: Ray Data files/s ({fps['ray_data']:.1f})",
                         "baseline": f"Pool(2) {fps['pool2']:.1f} files/s (plain loop {fps['loop']:.1f})",
                         "ratio": r["ratios"]["ray_data_vs_pool2"], "target": ">= 0.8", "date": date})
            mem = r.get("preprocess_memory", {})
            if "x1" in mem and "x4" in mem:
                rows.append({"measure": f"preprocess {ds}: peak memory, file list x4 "
                                        f"({mem['x4']['peak_mib']:.0f} MiB)",
                             "baseline": f"file list x1 ({mem['x1']['peak_mib']:.0f} MiB)",
                             "ratio": mem["x4"]["peak_mib"] / mem["x1"]["peak_mib"],
                             "target": "flat (~1.0)", "date": date})
    elif name == "train":
        for preset, r in d.get("presets", {}).items():
            sps = r["steps_per_s"]
            rows.append({"measure": f"train {preset}: Ray Train 1 worker steps/s ({sps['ray_1_worker']:.2f})",
                         "baseline": f"plain PyTorch loop {sps['plain']:.2f} steps/s",
                         "ratio": r["ratio_ray1_over_plain"], "target": f">= {r['target_ratio']}",
                         "date": date})
            rows.append({"measure": f"train {preset}: 2 workers steps/s ({sps['ray_2_workers']:.2f})",
                         "baseline": f"1 worker {sps['ray_1_worker']:.2f} steps/s",
                         "ratio": r["speedup_2_over_1_workers"], "target": "(reported)", "date": date})
    elif name == "sample":
        s = d.get("spectogan", {}).get("wall_clock", {})
        if s:
            rows.append({"measure": f"sample SpectoGAN d={s['d']} batch {s['batch']}: generator "
                                    f"{s['generator_gflop_s_best']:.1f} GFLOP/s",
                         "baseline": f"torch fp32 matmul {s['matmul_gflop_s_best']:.1f} GFLOP/s",
                         "ratio": s["generator_fraction_of_matmul"], "target": ">= 0.70", "date": date})
            rows.append({"measure": "sample SpectoGAN: end to end with Griffin-Lim "
                                    f"({s['clips_per_s_end_to_end']:.1f} clips/s)",
                         "baseline": f"generator alone ({s['clips_per_s_generator']:.1f} clips/s)",
                         "ratio": s["end_to_end_over_generator"], "target": "<= 1.4 (time)",
                         "date": date})
    elif name == "sweep":
        for key, r in (d.get("single_worker") or {}).items():
            rows.append({"measure": f"sweep, 1-worker trials, {key.replace('_', ' ')}: "
                                    f"overhead {r['overhead_per_trial_s']} s/trial",
                         "baseline": f"in-trial training {sum(r['train_s_per_trial']):.0f} s "
                                     f"over {r['wall_s']:.0f} s wall",
                         "ratio": r["efficiency"], "target": "efficiency >= 0.85, overhead <= 5 s",
                         "date": date})
        m = d.get("multi_worker")
        if m:
            rows.append({"measure": f"sweep, 2-worker trials: overhead {m['overhead_per_trial_s']} s/trial",
                         "baseline": f"trial time {sum(m['train_s_per_trial']):.0f} s over "
                                     f"{m['wall_s']:.0f} s wall", "ratio": m["efficiency"],
                         "target": "(reported)", "date": date})
    return rows


def write_results_index(results: str = "results") -> str:
    rows: list[dict[str, Any]] = []
    for name in ("preprocess", "train", "sample", "sweep"):
        path = os.path.join(results, "bench", f"{name}.json")
        if os.path.exists(path):
            rows += _bench_rows(name, _read_json(path))
    lines = ["# Results", "",
             "Measured on the development machine (2 cores, 24 GiB, no GPU). Every row is read "
             "from the JSON that `audiogan bench NAME` wrote to `results/bench/NAME.json` "
             "(each JSON records its command, machine and date); this page is regenerated with "
             "`python -m audiogan.report results`.", "",
             markdown_table(rows, ["measure", "baseline", "ratio", "target", "date"], limit=100),
             "", "Also here:", "",
             "- `train/`: real-data training runs of the CPU presets (loss curves, samples, commands).",
             "- `sweeps/`: real-data sweep reports with plots (when present).",
             "- `reliability.md`: faults and bad input, what happened and what was lost.", ""]
    path = os.path.join(results, "README.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)
    return path


if __name__ == "__main__":
    import sys

    print(write_results_index(sys.argv[1] if len(sys.argv) > 1 else "results"))
