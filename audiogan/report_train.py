"""The training-speed rows of the results table (issue 15's parts of `results/bench/train.json`):
full presets against the matmul rate, reporting cost, a 2-worker trial inside Tune, precision
and compile. Every figure and target is read from the JSON, never retyped here."""

from __future__ import annotations

import statistics
from typing import Any, Callable

Target = Callable[[dict[str, Any] | None, str], str]


def _full_rows(full: dict[str, Any], date: str, target: Target) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    targets, mm = full.get("targets"), full.get("matmul", {})

    def ref(row: dict[str, Any]) -> str:  # a row rerun alone carries its own reference
        m = row.get("matmul") or mm
        return f"{m.get('n')}² fp32 matmul, {m.get('threads')} threads: {m.get('gflop_s', 0):.0f} GFLOP/s"

    s = full.get("spectogan")

    def spread(row: dict[str, Any], key: str) -> str:  # the pairs behind a median ratio
        pairs = row.get("pairs") or []
        if len(pairs) < 2:
            return ""
        values = sorted(p[key] for p in pairs)
        # Pairs with a "first" key alternate which side runs first (ABBA).
        how = "pairs in ABBA order" if "first" in pairs[0] else "interleaved pairs"
        return f" (median of {len(pairs)} {how}, {values[0]:.2f}-{values[-1]:.2f})"

    if s:
        rows.append({"measure": f"train spectogan (d={s['d']}, batch {s['batch_size']}): product "
                                f"{s['product_s_per_step']:.1f} s/step, "
                                f"{s['product_share_of_matmul']:.2f} of matmul rate ({ref(s)})",
                     "baseline": f"plain PyTorch loop {s['plain_s_per_step']:.1f} s/step, "
                                 f"{s['plain_share_of_matmul']:.2f} of matmul rate"
                                 + spread(s, "product_over_plain"),
                     "ratio": s["product_over_plain_share"],
                     "target": target(targets, "spectogan_product_over_plain_share"),
                     "date": s.get("date", date)})
    p = full.get("pianogan")
    if p:
        rows.append({"measure": f"train pianogan (d={p['d']}, batch {p['batch_size']}): plain loop "
                                f"{p['plain_s_per_step']:.2f} s/step, "
                                f"{p['plain_share_of_matmul']:.2f} of matmul rate ({ref(p)})",
                     "baseline": f"oneDNN convolutions only {p['onednn_plain_s_per_step']:.2f} "
                                 f"s/step, {p['onednn_plain_share_of_matmul']:.2f}"
                                 + spread(p, "share_over_onednn_share"),
                     "ratio": p["share_over_onednn_share"],
                     "target": target(targets, "pianogan_share_over_onednn_share"),
                     "date": p.get("date", date)})
        rows.append({"measure": f"train pianogan: product {p['product_s_per_step']:.2f} s/step",
                     "baseline": f"plain loop {p['plain_s_per_step']:.2f} s/step",
                     "ratio": p["product_over_plain_share"], "target": target(None, ""),
                     "date": p.get("date", date)})
    return rows


def _gap_rows(gap: dict[str, Any], date: str, target: Target) -> list[dict[str, Any]]:
    """Where the product's full-preset step loses to the plain loop, layer by layer."""
    rounds = gap.get("rounds") or []
    if not rounds:
        return []

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    what = f"train {gap['preset']} (d={gap['d']}, batch {gap['batch_size']})"
    layers = [("audiogan's loop without Ray", "loop_local_s", "plain loop", "plain_s",
               "loop_local_over_plain"),
              ("the plain loop in a Python thread", "thread_s", "plain loop in this "
               "process's main thread", "plain_s", "thread_over_plain"),
              ("the plain loop in a Ray task", "ray_task_s", "plain loop in this process",
               "plain_s", "ray_task_over_plain"),
              ("the plain loop as a bare 1-worker TorchTrainer's training function",
               "train_worker_s", "the plain loop in a Ray task", "ray_task_s",
               "train_worker_over_ray_task"),
              ("the product's in-step time (1-worker TorchTrainer)", "product_in_step_s",
               "the plain loop in a bare TorchTrainer", "train_worker_s",
               "product_in_step_over_train_worker"),
              ("the product's wall time (reports included)", "product_s",
               "its in-step time", "product_in_step_s", "product_over_product_in_step"),
              ("all together: the product's wall time", "product_s", "the plain loop",
               "plain_s", "product_over_plain")]

    def spread(key: str) -> str:  # the rounds behind the median ratio
        values = sorted(r[key] for r in rounds)
        return f", {values[0]:.2f}-{values[-1]:.2f}" if len(values) > 1 else ""

    return [{"measure": f"{what}, where the product's gap goes: {name} {med(k):.2f} s/step",
             "baseline": f"{base} {med(bk):.2f} s/step (median of {len(rounds)} rounds, "
                         f"orders alternating{spread(ratio)})",
             "ratio": gap[ratio], "target": target(None, ""), "date": date}
            for name, k, base, bk, ratio in layers if ratio in gap]  # older runs: fewer


def _background_rows(bg: dict[str, Any], date: str, target: Target) -> list[dict[str, Any]]:
    """Per full preset and thread count: the plain loop beside a load the size of Ray's own
    processes, and the product, each against the plain loop alone."""
    rows: list[dict[str, Any]] = []
    for p in bg.get("runs", []):
        rounds = p["rounds"]
        what = (f"train {p['preset']} (d={p['d']}, batch {p['batch_size']}, "
                f"{p['threads']} thread(s))")
        cores = ", ".join(f"{r['ray_background_cores']:.3f}" for r in rounds)
        plain = statistics.median(r["plain_s"] for r in rounds)
        base = (f"plain loop, no Ray running, {plain:.2f} s/step "
                f"({len(rounds)} round(s), orders alternating)")
        rows += [{"measure": f"{what}: the plain loop beside busy-wait processes using what "
                             f"Ray's processes used in the product's run ({cores} of a core)",
                  "baseline": base, "ratio": p["loaded_over_plain"],
                  "target": target(None, ""), "date": date},
                 {"measure": f"{what}: the product (1-worker TorchTrainer), same rounds",
                  "baseline": base, "ratio": p["product_over_plain"],
                  "target": target(None, ""), "date": date}]
    return rows


def _reporting_rows(rep: dict[str, Any], date: str, target: Target) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    targets = rep.get("targets")
    for r in rep.get("standalone", []):
        rows.append({"measure": f"train {r['preset']} n_critic {r['n_critic']}, {r['workers']} "
                                f"worker(s), report every {rep.get('report_every_s')} s: wall "
                                f"{r['wall_steps_per_s']:.2f} steps/s, share lost to reporting",
                     "baseline": f"in-step {r['in_step_steps_per_s']:.2f} steps/s",
                     "ratio": r["loss"], "target": target(targets, "loss_to_reporting"),
                     "date": date})
    t = rep.get("tune")
    if t:
        rows.append({"measure": f"train {t['preset']}: 2-worker trial inside Tune "
                                f"{t['in_tune']['wall_steps_per_s']:.2f} wall steps/s",
                     "baseline": f"the same run standalone "
                                 f"{t['standalone']['wall_steps_per_s']:.2f} steps/s",
                     "ratio": t["tune_over_standalone"],
                     "target": target(targets, "tune_over_standalone"), "date": date})
    return rows


def _precision_rows(prec: dict[str, Any], date: str, target: Target) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for preset, r in prec.get("speed", {}).items():
        sps = r["steps_per_s"]
        rows.append({"measure": f"train {preset}: bf16 autocast {sps['bf16']:.2f} steps/s",
                     "baseline": f"fp32 {sps['fp32']:.2f} steps/s", "ratio": r["bf16_over_fp32"],
                     "target": target(None, ""), "date": date})
        rows.append({"measure": f"train {preset}: torch.compile {sps['compile']:.2f} steps/s "
                                f"(compile warm-up {r['compile_warmup_s']:.1f} s)",
                     "baseline": f"eager {sps['fp32']:.2f} steps/s",
                     "ratio": r["compile_over_eager"], "target": target(None, ""), "date": date})
    q = prec.get("bf16_check")
    if q:
        inside = sum(bool(v) for v in q["within"].values())
        rows.append({"measure": f"train spectogan-cpu {q['steps']} steps bf16: compared values "
                                f"within the fp32 seed spread ({inside} of {len(q['within'])}: "
                                + ", ".join(f"{k} {'yes' if v else 'no'}"
                                            for k, v in q["within"].items()) + ")",
                     "baseline": "fp32, seeds 0 and 1", "ratio": q["bf16_seconds_over_fp32"],
                     "target": target(prec.get("targets"), "bf16_within_seed_spread"),
                     "date": date})
    return rows


def train_speed_rows(d: dict[str, Any], dates: dict[str, str], date: str, target: Target
                     ) -> list[dict[str, Any]]:
    """Rows for the sections `audiogan bench train --parts
    full,gap,background,reporting,precision` wrote; `dates` holds each section's own date
    (`date`, the file's, when it has none)."""
    return (_full_rows(d.get("full_presets", {}), dates.get("full_presets", date), target)
            + _gap_rows(d.get("full_preset_gap", {}), dates.get("full_preset_gap", date), target)
            + _background_rows(d.get("ray_background", {}), dates.get("ray_background", date),
                               target)
            + _reporting_rows(d.get("reporting", {}), dates.get("reporting", date), target)
            + _precision_rows(d.get("precision", {}), dates.get("precision", date), target))
