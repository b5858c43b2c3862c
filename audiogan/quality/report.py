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


# Audio and MIDI stay few in the repository (the project allows ~40 such files), so each
# class's samples are joined into one file, in seed order with a gap: a digit's 10 clips as
# one wav, a composer's 10 phrases as one MIDI, and PIANO_WAVS_PER_CLASS phrases, each cut
# to PIANO_WAV_S, as one wav. The grid and one roll per phrase stay pictures.
DIGIT_GAP_S, PIANO_GAP_S, PIANO_WAVS_PER_CLASS, PIANO_WAV_S = 0.5, 2.0, 2, 8.0


def _join_wavs(paths: list[str], gap_s: float, cut_s: float | None = None) -> bytes:
    import numpy as np
    import soundfile as sf

    from audiogan.sample import wav_bytes

    parts, rate = [], 0
    for path in paths:
        audio, rate = sf.read(path, dtype="float32")
        parts.append(audio if cut_s is None else audio[:int(cut_s * rate)])
    gap = np.zeros(int(gap_s * rate), np.float32)
    joined = [x for part in parts for x in (part, gap)][:-1]
    return wav_bytes(np.concatenate(joined), rate)


def _join_midis(paths: list[str], gap_s: float) -> bytes:
    """One piano track: each phrase starts `gap_s` after the previous one's last note."""
    import io

    import pretty_midi

    joined = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0, name="piano")
    offset = 0.0
    for path in paths:
        phrase = pretty_midi.PrettyMIDI(io.BytesIO(storage.read_bytes(path)))
        notes = [n for inst in phrase.instruments for n in inst.notes]
        for n in notes:
            piano.notes.append(pretty_midi.Note(n.velocity, n.pitch, n.start + offset,
                                                n.end + offset))
        offset += max((n.end for n in notes), default=0.0) + gap_s
    joined.instruments.append(piano)
    buf = io.BytesIO()
    joined.write(buf)
    return buf.getvalue()


def committed_samples(work: str, out: str) -> list[str]:
    """Copy the long runs' committed samples (`--phase samples`, seeds 0-9 for every class)
    into OUT/samples/: digits/<digit>/seeds_0-9.wav and the grid (a row per digit);
    piano/<composer>/ with every seed's roll, the phrases joined as one MIDI and the first
    PIANO_WAVS_PER_CLASS as one wav. Returns the report lines describing them."""
    from audiogan.sample import slug

    lines: list[str] = []
    for family, kind in (("spectogan", "digits"), ("pianogan", "piano")):
        src = os.path.join(work, "runs", f"{family}-long", "committed")
        if not os.path.exists(os.path.join(src, "samples.json")):
            continue
        record = storage.read_json(os.path.join(src, "samples.json"))
        dst = os.path.join(out, "samples", kind)
        labels = record.get("labels") or ["unconditional"] * len(record["names"])
        # `seeds` lists the seeds asked for, once; `names` every (seed, label) sample.
        by_class: dict[str, list[tuple[int, str]]] = {}
        for name, label in zip(record["names"], labels):
            seed = int(re.match(r"seed_(\d+)", name).group(1))
            by_class.setdefault(label, []).append((seed, os.path.join(src, name)))
        for label, samples in by_class.items():
            samples.sort()
            folder = os.path.join(dst, slug(label))
            os.makedirs(folder, exist_ok=True)
            seeds = f"seeds_{samples[0][0]}-{samples[-1][0]}"
            stems = [stem for _, stem in samples]
            if kind == "digits":
                storage.write_bytes_atomic(os.path.join(folder, seeds + ".wav"), _join_wavs(
                    [s + ".wav" for s in stems], DIGIT_GAP_S))
                continue
            for seed, stem in samples:
                _copy(stem + ".png", os.path.join(folder, f"seed_{seed:04d}.png"))
            storage.write_bytes_atomic(os.path.join(folder, seeds + ".mid"), _join_midis(
                [s + ".mid" for s in stems], PIANO_GAP_S))
            heard = samples[:PIANO_WAVS_PER_CLASS]
            storage.write_bytes_atomic(
                os.path.join(folder, f"seeds_{heard[0][0]}-{heard[-1][0]}.wav"),
                _join_wavs([stem + ".wav" for _, stem in heard], PIANO_GAP_S, PIANO_WAV_S))
        if kind == "digits":
            _copy_small(os.path.join(src, "spectrograms.png"), os.path.join(dst, "grid"))
        storage.write_json_atomic(os.path.join(dst, "samples.json"), record)
        lines += [f"- `samples/{kind}/`: `audiogan sample {family}-long --seeds 0-9 --labels "
                  f"all` (step {record.get('step')}, {len(record['names'])} samples, seeds "
                  "not picked)" + (": `grid` has a row per digit (seeds 0-5); one folder per "
                                   "digit whose wav holds its 10 clips in seed order, "
                                   f"{DIGIT_GAP_S:g} s apart" if kind == "digits" else
                                   ": one folder per composer class with every seed's roll, "
                                   "the phrases as one MIDI in seed order "
                                   f"({PIANO_GAP_S:g} s apart) and the first "
                                   f"{PIANO_WAVS_PER_CLASS} rendered as one wav "
                                   f"({PIANO_WAV_S:.0f} s each)")]
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
