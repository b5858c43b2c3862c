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
from typing import Any, Sequence

from audiogan import storage
from audiogan.report_final import final_lines
from audiogan.report_train import train_speed_rows

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


def _model_section(best: str, out: str, title: str) -> list[str]:
    """A model's best trial, leaderboard, metrics beside the floor, plots and samples, read
    from an `audiogan best` directory (+ evaluate's metrics.json, sample's samples/); links
    relative to `out`, where the report is written."""
    lines = [f"## {title}", ""]
    board = _read_csv(os.path.join(best, "leaderboard.csv"))
    best_json = _read_json(os.path.join(best, "best.json"))
    if best_json:
        params = ", ".join(f"`{k}` = {_fmt(v)}" for k, v in best_json.get("params", {}).items())
        picked = f", picked by the {best_json['picked_by']}" if best_json.get("picked_by") else ""
        lines += [f"Best trial (of {best_json.get('trials')}, over {best_json.get('scope')}{picked}): "
                  f"`{best_json.get('trial_id')}`, `{best_json.get('metric')}` = "
                  f"{_fmt(best_json.get('value'))} ({best_json.get('mode')}) at critic step "
                  f"{_fmt(best_json.get('at_critic_steps'))}; {params}.", ""]
    page = os.path.join(best, "page", "index.html")  # `audiogan best`'s sweep page
    if os.path.exists(page):
        lines += [f"Sweep page, with players: [{_rel(page, out)}]({_rel(page, out)}).", ""]
    lines += ["### Leaderboard (from `leaderboard.csv`)", ""]
    cols = [c for c in (board[0].keys() if board else []) if c != "checkpoint"]
    # Trial ids stay text: "419e1623" reads as a float (infinity).
    lines += [markdown_table([{k: v if k == "trial_id" else _number(v) for k, v in row.items()}
                              for row in board], cols), ""]
    lines += ["### Best checkpoint against the real floor (from `metrics.json`)", ""]
    lines += [_metrics_table(_read_json(os.path.join(best, "metrics.json"))), ""]
    lines += final_lines(best_json)
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
        missing, listed = [], set()
        for f in samples.get("files", []):
            name = f if isinstance(f, str) else f.get("path", "")
            listed.add(os.path.basename(name))
            full = name if os.path.isabs(name) else os.path.join(best, "samples", name)
            if not os.path.exists(full):  # e.g. large renders left out of a commit
                missing.append(os.path.basename(name))
            elif name.endswith(".png"):
                lines.append(f"![{os.path.basename(name)}]({_rel(full, out)})")
            else:
                lines.append(f"- [{os.path.basename(name)}]({_rel(full, out)})")
        if missing:
            lines.append(f"- not kept here ({len(missing)}): {', '.join(missing)}; the sample "
                         "command below writes them again")
        # Files the sample command did not write (e.g. its renders joined into one file to
        # keep the repository's audio files few): linked too, so the page plays them.
        folder = os.path.join(best, "samples")
        for name in sorted(os.listdir(folder)):
            if name not in listed and name.endswith((".wav", ".mid", ".png")):
                lines.append(f"- added after sampling: [{name}]"
                             f"({_rel(os.path.join(folder, name), out)})")
        lines.append("")
    return lines


def write_demo_report(out: str, stage_seconds: dict[str, float], total_s: float,
                      commands: Sequence[tuple[str, Sequence[str]]],
                      spans: dict[str, tuple[float, float]] | None = None,
                      prepare: Sequence[str] = ()) -> str:
    """OUT/report.md; `commands` are the stages as (name, audiogan argv), in order; `spans`
    each run stage's (start, end) since the plan began; `prepare` the stages that may run
    two at a time (their wall time is given beside the table)."""
    spans = spans or {}
    lines = ["# audiogan demo report", "",
             f"Made by `make demo` on {time.strftime('%Y-%m-%d %H:%M')} in {total_s:.0f} s "
             "(stages skipped as up to date show 0 s). Demo data are small and synthetic "
             "(music21 corpus scores, espeak-ng digits) and the demo sweeps are small: the "
             "numbers show the pipeline works, not model quality.", ""]
    for family, title in MODELS:
        lines += _model_section(os.path.join(out, "best", family), out, title)
    lines += ["## Stages and commands to reproduce", ""]
    ran = [spans[n] for n in prepare if n in spans]
    if ran:
        lines += [f"The data preparation stages ({', '.join(prepare)}) run two at a time: "
                  f"{max(e for _, e in ran) - min(s for s, _ in ran):.1f} s of wall time "
                  "from the first one's start to the last one's end. Every later stage runs "
                  "alone.", ""]
    lines += ["| stage | started at (s) | seconds | command |", "|---|---|---|---|"]
    for name, argv in commands:
        start = f"{spans[name][0]:.1f}" if name in spans else "-"
        lines.append(f"| {name} | {start} | {stage_seconds.get(name, 0.0):.1f} | "
                     f"`audiogan {shlex.join(argv)}` |")
    path = os.path.join(out, "report.md")
    storage.write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())
    return path


def _baseline_lines(best_json: dict[str, Any]) -> list[str]:
    base = best_json.get("baseline")
    metric, mode = best_json.get("metric"), best_json.get("mode")
    lines = [f"- Trials: {best_json.get('trials')} ({', '.join(f'{v} {k}' for k, v in best_json.get('trials_by_status', {}).items())}); "
             f"equal budget of {best_json.get('max_critic_steps')} critic steps each; "
             f"ASHA stopped {best_json.get('stopped_early_by_asha')} early."]
    if base:
        verdict = ("the baseline itself is the best trial" if base.get("is_best") else
                   f"best trial `{best_json.get('trial_id')}`: {_fmt(best_json.get('value'))}")
        lines.append(f"- `{metric}` ({mode}), best over all evaluations: WaveGAN defaults "
                     f"(trial `{base.get('trial_id')}`, "
                     f"{', '.join(f'`{k}`={_fmt(v)}' for k, v in base.get('params', {}).items())}): "
                     f"{_fmt(base.get('value'))} at critic step {_fmt(base.get('at_critic_steps'))}"
                     + (f" (ASHA stopped it at {base.get('critic_steps')} critic steps)"
                        if base.get("critic_steps") and
                        base["critic_steps"] < (best_json.get("max_critic_steps") or 0) else "")
                     + f"; {verdict}.")
    else:
        lines.append("- No baseline trial (WaveGAN defaults) in this sweep.")
    return lines


def _full_budget_lines(best: str, best_json: dict[str, Any]) -> list[str]:
    """The baseline config trained for the whole budget outside the sweep (for sweeps run
    before the scheduler exempted the baseline), from its curves.csv, when present."""
    path = os.path.join(best, "baseline-full-budget", "curves.csv")
    metric = best_json.get("metric", "eval/ndb")
    rows = [r for r in _read_csv(path) if r.get("key") == metric]
    if not rows:
        return []
    n_critic = (best_json.get("baseline") or {}).get("params", {}).get("loss.n_critic", 1)
    points = ", ".join(f"{_fmt(float(r['value']))} at {int(float(r['step'])) * int(n_critic)}"
                       for r in rows)
    best_v = min(float(r["value"]) for r in rows) if best_json.get("mode") == "min" else \
        max(float(r["value"]) for r in rows)
    return [f"- WaveGAN defaults trained for the whole budget outside the sweep "
            f"(`baseline-full-budget/`, `{metric}` by critic step): {points}; best "
            f"{_fmt(best_v)}.", ""]


def write_sweep_report(best: str, title: str, commands: list[str]) -> str:
    """BEST/README.md for a real-data sweep, from the files `audiogan best`, `evaluate` and
    `sample` wrote into BEST."""
    best_json = _read_json(os.path.join(best, "best.json"))
    lines = [f"# {title}", "", "Every number below is read from the files next to this page "
             "(`best.json`, `leaderboard.csv`, `metrics.json`, `samples/samples.json`), which the "
             "commands at the end wrote. Regenerate this page with `python -m audiogan.report "
             f"sweep {best} --title ...`.", ""]
    lines += _baseline_lines(best_json) + [""]
    lines += _full_budget_lines(best, best_json)
    lines += _model_section(best, best, "Best trial")
    lines += ["## Commands", "", "```", *commands, "```", ""]
    path = os.path.join(best, "README.md")
    storage.write_bytes_atomic(path, "\n".join(lines).encode())
    return path


# -- results/README.md: one table over the committed benchmark JSON --------------------------
NO_TARGET = "(reported)"  # the JSON records no target for this measure


def _target(targets: dict[str, Any] | None, key: str) -> str:
    """The target the bench JSON recorded for `key` (never one typed here)."""
    return str((targets or {}).get(key, NO_TARGET))


def _bench_rows(name: str, d: dict[str, Any]) -> list[dict[str, Any]]:
    """(measure, baseline, ratio, target) rows read from one `audiogan bench` JSON."""
    rows: list[dict[str, Any]] = []
    date = d.get("date", "")
    if name == "preprocess":
        targets = d.get("targets")
        for ds, r in d.get("datasets", {}).items():
            fps = r["files_per_s"]
            rows.append({"measure": f"preprocess {ds}: Ray Data files/s ({fps['ray_data']:.1f})",
                         "baseline": f"Pool(2) {fps['pool2']:.1f} files/s (plain loop {fps['loop']:.1f})",
                         "ratio": r["ratios"]["ray_data_vs_pool2"],
                         "target": _target(targets, "ray_data_vs_pool2"), "date": date})
            mem = r.get("preprocess_memory", {})
            if "x1" in mem and "x4" in mem:
                rows.append({"measure": f"preprocess {ds}: peak memory, file list x4 "
                                        f"({mem['x4']['peak_mib']:.0f} MiB)",
                             "baseline": f"file list x1 ({mem['x1']['peak_mib']:.0f} MiB)",
                             "ratio": mem["x4"]["peak_mib"] / mem["x1"]["peak_mib"],
                             "target": _target(targets, "peak_mib_x4_over_x1"), "date": date})
    elif name == "train":
        # `bench train --parts` re-runs some sections: each has its own date in "dates".
        dates = d.get("dates", {})
        date = dates.get("presets", date)
        for preset, r in d.get("presets", {}).items():
            sps = r["steps_per_s"]
            targets = r.get("targets")
            rows.append({"measure": f"train {preset}: Ray Train 1 worker steps/s ({sps['ray_1_worker']:.2f})",
                         "baseline": f"plain PyTorch loop {sps['plain']:.2f} steps/s",
                         "ratio": r["ratio_ray1_over_plain"],
                         "target": _target(targets, "ratio_ray1_over_plain"), "date": date})
            rows.append({"measure": f"train {preset}: 2 workers steps/s ({sps['ray_2_workers']:.2f})",
                         "baseline": f"1 worker {sps['ray_1_worker']:.2f} steps/s",
                         "ratio": r["speedup_2_over_1_workers"],
                         "target": _target(targets, "speedup_2_over_1_workers"), "date": date})
        rows += train_speed_rows(d, dates, d.get("date", ""), _target)
    elif name == "sample":
        s = d.get("spectogan", {}).get("wall_clock", {})
        if s:
            targets = s.get("targets")
            rows.append({"measure": f"sample SpectoGAN d={s['d']} batch {s['batch']}: generator "
                                    f"{s['generator_gflop_s_best']:.1f} GFLOP/s",
                         "baseline": f"torch fp32 matmul {s['matmul_gflop_s_best']:.1f} GFLOP/s",
                         "ratio": s["generator_fraction_of_matmul"],
                         "target": _target(targets, "generator_fraction_of_matmul"), "date": date})
            rows.append({"measure": "sample SpectoGAN: end to end with Griffin-Lim "
                                    f"({s['clips_per_s_end_to_end']:.1f} clips/s), time ratio",
                         "baseline": f"generator alone ({s['clips_per_s_generator']:.1f} clips/s)",
                         "ratio": s["end_to_end_over_generator"],
                         "target": _target(targets, "end_to_end_over_generator"), "date": date})
            ref = s.get("griffin_lim_reference")
            if ref:
                rows.append({"measure": f"sample SpectoGAN: {ref['implementation']} on the same "
                                        f"{ref['clips']} clips ({min(ref['librosa_s_per_batch']):.3g} s), "
                                        "time ratio",
                             "baseline": f"audiogan Griffin-Lim ({min(ref['audiogan_s_per_batch']):.3g} s; "
                                         f"{ref['settings']['n_iter']} iterations both)",
                             "ratio": ref["librosa_time_over_audiogan"],
                             "target": _target(targets, "librosa_time_over_audiogan"), "date": date})
    elif name == "sweep":
        targets = d.get("targets") or {}
        single = (f"efficiency {targets['efficiency']}, overhead {targets['overhead_per_trial_s']} s"
                  if "efficiency" in targets and "overhead_per_trial_s" in targets else NO_TARGET)
        for key, r in (d.get("single_worker") or {}).items():
            rows.append({"measure": f"sweep, 1-worker trials, {key.replace('_', ' ')}: "
                                    f"overhead {r['overhead_per_trial_s']} s/trial",
                         "baseline": f"in-trial training {sum(r['train_s_per_trial']):.0f} s "
                                     f"over {r['wall_s']:.0f} s wall",
                         "ratio": r["efficiency"], "target": single, "date": date})
        m = d.get("multi_worker")
        if m:
            rows.append({"measure": f"sweep, 2-worker trials: overhead {m['overhead_per_trial_s']} s/trial",
                         "baseline": f"trial time {sum(m['train_s_per_trial']):.0f} s over "
                                     f"{m['wall_s']:.0f} s wall", "ratio": m["efficiency"],
                         "target": NO_TARGET, "date": date})
    return rows


def write_results_index(results: str = "results") -> str:
    rows: list[dict[str, Any]] = []
    for name in ("preprocess", "train", "sample", "sweep"):
        path = os.path.join(results, "bench", f"{name}.json")
        if os.path.exists(path):
            rows += _bench_rows(name, _read_json(path))
    rows += _sweep_rows(results)
    lines = ["# Results", "",
             "Measured on the development machine (2 cores, 24 GiB, no GPU). Every row is read "
             "from the JSON that `audiogan bench NAME` wrote to `results/bench/NAME.json` "
             "(each JSON records its command, machine and date); this page is regenerated with "
             "`python -m audiogan.report results`.", "",
             markdown_table(rows, ["measure", "baseline", "ratio", "target", "date"], limit=100),
             "", "Also here:", "",
             "- `train/`: real-data training runs of the CPU presets (loss curves, samples, commands).",
             "- `sweeps/`: real-data sweep reports with plots (when present).",
             "- `reliability.md`: faults and bad input, what happened and what was lost.",
             "- `complex/`: the complex representation's and Griffin-Lim's accuracy (SNR, the "
             "digit classifier after each round trip) and the Griffin-Lim momentum default.",
             "- `quality/`: the listening metrics' classifier, the recipe ablation (table, "
             "plot, every row's pictures) and what the samples look like.",
             ""]
    path = os.path.join(results, "README.md")
    storage.write_bytes_atomic(path, "\n".join(lines).encode())
    return path


def _sweep_rows(results: str) -> list[dict[str, Any]]:
    rows = []
    root = os.path.join(results, "sweeps")
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        b = _read_json(os.path.join(root, name, "best.json"))
        base = b.get("baseline") or {}
        if not b or base.get("value") in (None, 0):
            continue
        final = (b.get("final") or {}).get("comparison")
        if final:  # the final stage's verdict, not one trial-time evaluation's
            rows += _final_rows(name, b)
            continue
        rows.append({"measure": f"sweep {name}: best {b['metric']} {_fmt(b['value'])} "
                                f"({b['trials']} trials, {b.get('max_critic_steps')} critic steps each)",
                     "baseline": f"WaveGAN defaults {_fmt(base['value'])}",
                     "ratio": b["value"] / base["value"],
                     "target": f"{'lower' if b['mode'] == 'min' else 'higher'} is better",
                     "date": b.get("date", "")})
    return rows


def _final_rows(name: str, b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per objective: the final evaluation's best against the baseline (one
    checkpoint each, bootstrap intervals), and the verdict over seed replicates."""
    final = b["final"]
    settings = final.get("settings") or {}
    seeds = (final.get("replicates") or {}).get("comparison") or {}
    rows = []
    for metric, c in final["comparison"]["by_metric"].items():
        best, base = c["best"], c["baseline"]
        over = seeds.get(metric)
        over_seeds = f"; seed replicates' intervals: {over['verdict']} " \
                     f"({over.get('test', '')} p = {_fmt(over.get('p'))})" if over else ""
        rows.append({
            "measure": f"sweep {name}, final (n {best.get('n', settings.get('n'))}, "
                       f"K {best.get('k', settings.get('ndb_k'))}): best {metric} "
                       f"{_fmt(best['value'])} [{_fmt(best['lo'])}, {_fmt(best['hi'])}]",
            "baseline": f"paper's recipe {_fmt(base['value'])} "
                        f"[{_fmt(base['lo'])}, {_fmt(base['hi'])}]",
            "ratio": best["value"] / base["value"] if base["value"] else float("nan"),
            "target": f"{'lower' if c['mode'] == 'min' else 'higher'} is better; intervals: "
                      f"{c['verdict']}{over_seeds}",
            "date": final.get("date", b.get("date", ""))})
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m audiogan.report")
    sub = parser.add_subparsers(dest="what", required=True)
    res = sub.add_parser("results", help="regenerate RESULTS/README.md from bench JSON")
    res.add_argument("dir", nargs="?", default="results")
    sw = sub.add_parser("sweep", help="BEST/README.md for a real-data sweep")
    sw.add_argument("best")
    sw.add_argument("--title", required=True)
    sw.add_argument("--command", action="append", default=[])
    args = parser.parse_args(argv)
    if args.what == "results":
        print(write_results_index(args.dir))
    else:
        print(write_sweep_report(args.best, args.title, args.command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
