"""`python -m audiogan.quality report`: the ablation table and plot, read only from each
row's final evaluation (`final.json`, written by `audiogan evaluate`) and its checkpoint
meta (training steps and time)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from audiogan import storage
from audiogan.quality.plan import BASE, FINAL_K, FINAL_N, ROWS, final_scores, row_overrides


def _fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _train_info(result: dict[str, Any]) -> tuple[Any, Any]:
    meta_path = os.path.join(result["checkpoint"], "meta.json")
    if not os.path.exists(meta_path):
        return result.get("step"), None
    with open(meta_path) as f:
        meta = json.load(f)
    return meta.get("step"), meta.get("metrics", {}).get("time/train_s")


# Every run name a family can have, in table order: the rows, their second seeds, long runs.
RUN_NAMES = (*ROWS, *(f"{r}-seed1" for r in ROWS), "long", "long-uncond")


def _rows(work: str, family: str) -> list[dict[str, Any]]:
    out = []
    for name in RUN_NAMES:
        result = final_scores(work, f"{family}-{name}")
        if result is None:
            continue
        m, floor = result["metrics"], result["floor"]
        step, train_s = _train_info(result)
        row = {"row": name, "steps": step,
               "train_min": None if train_s is None else train_s / 60,
               "ndb": m.get("eval/ndb"), "ndb_floor": floor.get("eval/ndb")}
        if family == "spectogan":
            row["is_ratio"] = (m["eval/is"] / floor["eval/is"]) if "eval/is" in m else None
            row["cond_acc"] = m.get("eval/cond_acc")
            per = [v for k, v in m.items() if k.startswith("eval/cond_acc/")]
            row["cond_acc_min"] = min(per) if per else None
            row["cond_acc_floor"] = floor.get("eval/cond_acc")
        else:
            row["note_overlap"] = m.get("eval/note_overlap")
            row["note_overlap_floor"] = floor.get("eval/note_overlap")
            row["pc_entropy"] = m.get("eval/pc_entropy")
            row["pc_entropy_real"] = floor.get("eval/pc_entropy")
        row["overrides"] = row_overrides(family, name.split("-")[0]) \
            if name.split("-")[0] in ROWS else {}
        out.append(row)
    return out


COLUMNS = {
    "spectogan": ["row", "steps", "train_min", "is_ratio", "cond_acc", "cond_acc_min",
                  "cond_acc_floor", "ndb", "ndb_floor"],
    "pianogan": ["row", "steps", "train_min", "ndb", "ndb_floor", "note_overlap",
                 "note_overlap_floor", "pc_entropy", "pc_entropy_real"],
}


def _plot(tables: dict[str, list[dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (family, rows) in zip(axes, tables.items()):
        names = [r["row"] for r in rows]
        if family == "spectogan":
            series = {"IS / real IS": [r["is_ratio"] for r in rows],
                      "cond. accuracy": [r["cond_acc"] for r in rows],
                      "NDB": [r["ndb"] for r in rows]}
        else:
            series = {"NDB": [r["ndb"] for r in rows],
                      "note overlap": [r["note_overlap"] for r in rows]}
        width = 0.8 / max(len(series), 1)
        for i, (label, values) in enumerate(series.items()):
            xs = [j + i * width for j in range(len(names))]
            ax.bar(xs, [v if v is not None else 0 for v in values], width, label=label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, rotation=30,
                      ha="right", fontsize=8)
        ax.set_title(f"{family}: final evaluation (N={FINAL_N}, K={FINAL_K})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _copy_small(src: str, dst_stem: str) -> str:
    """Copy a picture for the repository: spectrogram grids (noise-like texture, ~0.5-1 MB
    as PNG) as JPEG quality 75 (~0.1 MB), piano rolls as they are; returns the suffix."""
    if os.path.getsize(src) < 100_000:
        _copy(src, dst_stem + ".png")
        return ".png"
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(src).convert("RGB").save(buf, format="JPEG", quality=75, optimize=True)
    storage.write_bytes_atomic(dst_stem + ".jpg", buf.getvalue())
    return ".jpg"


def _pictures(work: str, out: str) -> list[str]:
    """Each row's samples (`--phase samples`), copied beside the table: the same seeds in
    every row, so the rows can be compared by looking."""
    lines: list[str] = []
    for family in BASE:
        for name in RUN_NAMES:
            folder = os.path.join(work, "runs", f"{family}-{name}", "samples")
            if family == "spectogan":
                found = ["spectrograms.png"]
            else:  # seed 0's roll (conditional runs: seed_0000_<class>.png)
                found = sorted(f for f in os.listdir(folder) if f.startswith("seed_0000")
                               and f.endswith(".png")) if os.path.isdir(folder) else []
            if not found or not os.path.exists(os.path.join(folder, found[0])):
                continue
            os.makedirs(os.path.join(out, "pictures"), exist_ok=True)
            target = os.path.join("pictures", f"{family}-{name}")
            target += _copy_small(os.path.join(folder, found[0]), os.path.join(out, target))
            if not lines:
                lines += ["## Pictures", "",
                          "`audiogan sample RUN --seeds 0-2 --labels 0-9` (conditional), "
                          "`--seeds 0-11` (unconditional) or `--seeds 0-1` (piano; seed 0 "
                          "shown), from each row's final checkpoint (EMA weights where the "
                          "row has them).", ""]
            lines += [f"### {family} {name}", "", f"![{family} {name}]({target})", ""]
    return lines


# The targets for the long runs: (run, label, value(row), bound, "min"|"max").
TARGETS = (
    ("spectogan", "long-uncond", "IS / real IS", lambda r: r["is_ratio"], 0.66, "min"),
    ("spectogan", "long", "cond_acc", lambda r: r["cond_acc"], 0.80, "min"),
    ("spectogan", "long", "lowest digit's cond_acc", lambda r: r["cond_acc_min"], 0.6, "min"),
    ("pianogan", "long", "NDB - floor", lambda r: r["ndb"] - r["ndb_floor"], 0.10, "max"),
    ("pianogan", "long", "note overlap: distance to floor",
     lambda r: abs(r["note_overlap"] - r["note_overlap_floor"]), 0.03, "max"),
    ("pianogan", "long", "pc entropy: distance to real (bits)",
     lambda r: abs(r["pc_entropy"] - r["pc_entropy_real"]), 0.10, "max"),
)


def _targets(tables: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The long runs against the issue's targets: met, or missed by how much."""
    lines = ["| run | measure | value | target | verdict |", "|---|---|---|---|---|"]
    for family, run, label, value, bound, kind in TARGETS:
        row = next((r for r in tables.get(family, []) if r["row"] == run), None)
        if row is None:
            continue
        try:
            v = value(row)
        except (KeyError, TypeError):   # a metric the run did not report
            continue
        gap = bound - v if kind == "min" else v - bound
        verdict = "met" if gap <= 0 else f"missed by {gap:.3f}"
        sign = ">=" if kind == "min" else "<="
        lines.append(f"| {family}-{run} | {label} | {v:.3f} | {sign} {bound} | {verdict} |")
    return lines if len(lines) > 2 else []


# Audio and MIDI stay few in the repository: the first seed of each class (the grid and the
# rolls show all ten); piano audio cut to PIANO_WAV_S.
AUDIO_PER_CLASS, PIANO_WAV_S = 1, 8.0


def committed_samples(work: str, out: str) -> list[str]:
    """Copy the long runs' committed samples (`--phase samples`, seeds 0-9 for every class)
    into OUT/samples/: digits/<digit>/ and the grid (a row per digit); piano/<composer>/
    with every seed's roll. Wav (piano: and MIDI) for the first AUDIO_PER_CLASS seeds of a
    class, piano wavs cut to PIANO_WAV_S. Returns the report lines describing them."""
    import soundfile as sf

    from audiogan.sample import slug, wav_bytes

    lines: list[str] = []
    for family, kind in (("spectogan", "digits"), ("pianogan", "piano")):
        src = os.path.join(work, "runs", f"{family}-long", "committed")
        if not os.path.exists(os.path.join(src, "samples.json")):
            continue
        record = storage.read_json(os.path.join(src, "samples.json"))
        dst = os.path.join(out, "samples", kind)
        per_class: dict[str, int] = {}
        labels = record.get("labels") or ["unconditional"] * len(record["names"])
        # `seeds` lists the seeds asked for, once; `names` every (seed, label) sample.
        for name, label in zip(record["names"], labels):
            seed = int(re.match(r"seed_(\d+)", name).group(1))
            folder = os.path.join(dst, slug(label))
            os.makedirs(folder, exist_ok=True)
            stem = os.path.join(folder, f"seed_{seed:04d}")
            per_class[label] = per_class.get(label, 0) + 1
            keep_audio = per_class[label] <= AUDIO_PER_CLASS
            if kind == "digits":
                if keep_audio:
                    _copy(os.path.join(src, name + ".wav"), stem + ".wav")
                continue
            _copy(os.path.join(src, name + ".png"), stem + ".png")
            if keep_audio:
                _copy(os.path.join(src, name + ".mid"), stem + ".mid")
                audio, rate = sf.read(os.path.join(src, name + ".wav"), dtype="float32")
                storage.write_bytes_atomic(stem + ".wav",
                                           wav_bytes(audio[:int(PIANO_WAV_S * rate)], rate))
        if kind == "digits":
            _copy_small(os.path.join(src, "spectrograms.png"), os.path.join(dst, "grid"))
        storage.write_json_atomic(os.path.join(dst, "samples.json"), record)
        lines += [f"- `samples/{kind}/`: `audiogan sample {family}-long --seeds 0-9 --labels "
                  f"all` (step {record.get('step')}, {len(record['names'])} samples, seeds "
                  "not picked)" + (": `grid` has a row per digit (seeds 0-5), one folder per "
                                   f"digit with the wav of its first {AUDIO_PER_CLASS} seed(s)"
                                   if kind == "digits" else
                                   ": one folder per composer class, every seed's roll, "
                                   f"MIDI and wav ({PIANO_WAV_S:.0f} s) of the first "
                                   f"{AUDIO_PER_CLASS} seed(s)")]
    return lines


def _copy(src: str, dst: str) -> None:
    storage.write_bytes_atomic(dst, storage.read_bytes(src))


def write_report(work: str, out: str) -> str:
    tables = {family: _rows(work, family) for family in BASE}
    tables = {k: v for k, v in tables.items() if v}
    lines = ["# Quality ablation (issue 16)", "",
             "Every number is read from each row's final evaluation (`final.json`, written by "
             f"`audiogan evaluate RUN --n {FINAL_N} --ndb-k {FINAL_K}` on seeds disjoint from "
             "the training-time ones) and its checkpoint's meta. Rows add one step each; see "
             "`audiogan/quality/plan.py` for the exact overrides and the commands. SpectoGAN's "
             "`is_ratio` and `cond_acc` are scored after the audio round trip by the robust "
             "classifier; floors are the held-out real split scored the same way.", ""]
    for family, rows in tables.items():
        cols = COLUMNS[family]
        lines += [f"## {family}", "", "| " + " | ".join(cols) + " |",
                  "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
        lines.append("")
    os.makedirs(out, exist_ok=True)
    if tables:
        _plot(tables, os.path.join(out, "ablation.png"))
        lines += ["![ablation](ablation.png)", ""]
    targets = _targets(tables)
    if targets:
        lines += ["## Long runs against the targets", "", *targets, ""]
    committed = committed_samples(work, out)
    if committed:
        lines += ["## Committed samples", "", *committed, ""]
    lines += _pictures(work, out)
    path = os.path.join(out, "ablation.md")
    storage.write_bytes_atomic(path, "\n".join(lines).encode())
    return path
