"""Export a run's loss curves (from its TensorBoard events) to CSV and a PNG.

    python -m audiogan.train.curves RUN_DIR OUT_DIR
"""

from __future__ import annotations

import csv
import os
import sys

from audiogan.metrics import registry
from audiogan.wgan import LOSS_KEYS

# Every loss of every kind, then every evaluation metric the registry knows (those a run
# logged are drawn).
KEYS = (*dict.fromkeys(k for keys in LOSS_KEYS.values() for k in keys),
        *(m.name for m in registry.METRICS.values() if m.objective))


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        # later event files (resumed attempts) overwrite earlier values at the same step
        out[tag] = {e.step: e.value for e in acc.Scalars(tag)}
    return {k: sorted(v.items()) for k, v in out.items()}


def export(run_dir: str, out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scalars = read_scalars(os.path.join(run_dir, "tensorboard"))
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "curves.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "step", "value"])
        for key in sorted(scalars):
            for step, value in scalars[key]:
                w.writerow([key, step, f"{value:.6g}"])
    keys = [k for k in KEYS if k in scalars]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2 * len(keys)), sharex=True)
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys):
        steps, values = zip(*scalars[key])
        ax.plot(steps, values, lw=1, marker="o", ms=2)
        ax.set_ylabel(key, fontsize=8)
    plt.xlabel("step (generator updates)")
    fig.tight_layout()
    png_path = os.path.join(out_dir, "curves.png")
    fig.savefig(png_path, dpi=80)
    return [csv_path, png_path]


if __name__ == "__main__":
    print("\n".join(export(sys.argv[1], sys.argv[2])))
