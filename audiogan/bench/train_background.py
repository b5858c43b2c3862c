"""`audiogan bench train` part `background`: what Ray's own processes cost a training step
that takes every core of the machine.

Parts `full` and `gap` find the product (`audiogan train`'s 1-worker TorchTrainer) slower
per step than the plain PyTorch loop, with no single layer of the product to blame. The
loop's threads use every core (THREADS of them); Ray's other processes (GCS, raylet,
dashboard and its agent, Train's controller and helper actors, the driver) wake up
periodically, and each time one of them takes a core, one training thread waits and the
other waits for it at the next barrier of the parallel region.

Each round, on the full presets (d = 64, batch 64; `spectogan` one round, its step takes
a minute or more here), with THREADS training threads:
  product  the product's wall seconds per step between its first and last report; over
           the same interval, the CPU seconds every Ray process but the Train worker used
           (Linux `/proc`), as a share of one core: `ray_background_cores`
  plain    the plain loop in this process, with no Ray running
  loaded   the plain loop beside LOAD_PROCS busy-wait processes that together use
           `ray_background_cores` (duty cycle over LOAD_PERIOD_S)
in alternating order. If `loaded_over_plain` comes near `product_over_plain`, the gap is
the cores Ray's processes share with training, not the product's loop. A last run, on
`pianogan` with THREADS - 1 threads, leaves Ray a core: the product should then keep up.
"""

from __future__ import annotations

import glob
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from audiogan.bench.train_common import plain_seconds_per_step
from audiogan.bench.train_full import THREADS, full_preset, product_reports, report_timing
from audiogan.config import Config

# (preset, training threads, rounds)
RUNS = (("pianogan", THREADS, 2), ("spectogan", THREADS, 1), ("pianogan", THREADS - 1, 2))
STEPS = {"pianogan": (2, 12), "spectogan": (1, 2)}  # (warm-up, timed) for the plain loops
# The product reports by time (30 s): enough steps for the first report and 2+ more.
PRODUCT_STEPS = {"pianogan": 36, "spectogan": 4}
LOAD_PROCS = 2
LOAD_PERIOD_S = 0.025
# One busy-wait process: busy for `busy_s` of every `period_s`, until killed.
LOAD_SCRIPT = ("import sys, time\nbusy, period = float(sys.argv[1]), float(sys.argv[2])\n"
               "while True:\n    t = time.perf_counter()\n"
               "    while time.perf_counter() - t < busy: pass\n    time.sleep(period - busy)\n")


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid -> (command line, user + system CPU seconds so far), every process on the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        pid = int(stat.split("/")[2])
        try:
            with open(stat) as f:
                text = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone since the listing
            continue
        fields = text[text.rindex(")") + 2:].split()
        out[pid] = (cmd, (int(fields[11]) + int(fields[12])) / tick)
    return out


def ray_background_cores(before: dict[int, tuple[str, float]],
                         after: dict[int, tuple[str, float]], seconds: float,
                         worker_marker: str = "RayTrainWorker") -> float:
    """CPU used between two `cpu_seconds` snapshots by Ray's processes and this one (the
    driver), the Train worker excepted, as a share of one core."""
    used = 0.0
    for pid, (cmd, cpu) in after.items():
        if worker_marker in cmd or not ("ray" in cmd or pid == os.getpid()):
            continue
        used += cpu - before.get(pid, (cmd, 0.0))[1]
    return used / seconds


def _product(cfg: Config, data: str, steps: int, work: str) -> dict[str, float]:
    """The product's timing, and Ray's background CPU between its first and last report
    (the report log's first and last line; evaluation follows the last)."""
    from audiogan.cluster.start import ray_session

    marks: list[tuple[float, dict]] = []  # (time, snapshot) at each new report
    done = threading.Event()

    def watch() -> None:
        seen = 0
        while not done.is_set():
            logs = glob.glob(os.path.join(work, "run-*.jsonl"))
            if logs:
                with open(logs[0]) as f:
                    n = sum(1 for _ in f)
                if n > seen:
                    seen = n
                    marks.append((time.perf_counter(), cpu_seconds()))
            time.sleep(0.1)

    for old in glob.glob(os.path.join(work, "run-*.jsonl")):
        os.remove(old)
    watcher = threading.Thread(target=watch, daemon=True)
    with ray_session(None, os.cpu_count() or 2, log_to_driver=False):
        watcher.start()
        try:
            timing = report_timing(product_reports(cfg, data, steps, work))
        finally:
            done.set()
            watcher.join()
    if len(marks) < 2:
        raise RuntimeError("the product's report log was not seen twice: cannot time it")
    (t0, first), (t1, last) = marks[0], marks[-1]
    return {"product_s": timing["wall"],
            "ray_background_cores": ray_background_cores(first, last, t1 - t0)}


def _loaded(cfg: Config, data: str, cores: float, warmup: int, timed: int) -> float:
    busy = min(LOAD_PERIOD_S, cores / LOAD_PROCS * LOAD_PERIOD_S)
    procs = [subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(busy), str(LOAD_PERIOD_S)])
             for _ in range(LOAD_PROCS)]
    try:
        return plain_seconds_per_step(cfg, data, warmup, timed)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _bench_preset(preset: str, threads: int, n_rounds: int, quick: bool, work: str
                  ) -> dict[str, Any]:
    cfg, data = full_preset(preset, threads, quick, work, f"background{threads}")
    warmup, timed = (1, 2) if quick else STEPS[preset]
    steps = 36 if quick else PRODUCT_STEPS[preset]
    rounds: list[dict[str, Any]] = []
    for i in range(1 if quick else n_rounds):
        order = ["product", "plain", "loaded"] if i % 2 == 0 else ["plain", "loaded", "product"]
        row: dict[str, Any] = {"order": order}
        for name in order:
            if name == "product":
                row.update(_product(cfg, data, steps, work))
            elif name == "plain":
                row["plain_s"] = plain_seconds_per_step(cfg, data, warmup, timed)
            else:  # this round's product's background, or the last round's if it runs first
                cores = row.get("ray_background_cores", rounds[-1]["ray_background_cores"]
                                if rounds else None)
                row["loaded_s"] = _loaded(cfg, data, cores, warmup, timed)
                row["load_cores"] = cores
        row.update({"product_over_plain": row["plain_s"] / row["product_s"],
                    "loaded_over_plain": row["plain_s"] / row["loaded_s"]})
        rounds.append(row)
    keys = ("ray_background_cores", "product_over_plain", "loaded_over_plain")
    return {"preset": preset, "threads": threads, "d": cfg.model.d,
            "batch_size": cfg.optim.batch_size, "product_steps": steps,
            "rounds": rounds, **{k: statistics.median(r[k] for r in rounds) for k in keys}}


def bench_background(quick: bool, work: str) -> dict[str, Any]:
    """Starts and stops its own Ray for each product run (the plain loops run without)."""
    runs = [r for r in RUNS if r[1] >= 1]
    return {"load_procs": LOAD_PROCS, "load_period_s": LOAD_PERIOD_S,
            "runs": [_bench_preset(p, t, n, quick, work) for p, t, n in runs]}
