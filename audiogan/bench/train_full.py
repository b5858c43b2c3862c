"""`audiogan bench train` part `full`: the paper presets against the hardware.

For `spectogan` and `pianogan` (d = 64, batch 64) on a synthetic dataset: the FLOPs of one
full step (n_critic critic updates with the penalty's double backward, then the generator
update), counted by `torch.utils.flop_counter.FlopCounterMode`; the step time of the plain
PyTorch loop (`wgan.train_step` in this process) and of the product (`audiogan train`'s
TorchTrainer, 1 worker), both on THREADS threads; and each one's FLOP/s as a share of the
fp32 matmul rate measured in the same process (an n x n matmul on the same threads).
The plain loop and the product run in PAIRS[preset] pairs, each with its own matmul rate,
in ABBA order (plain then product, product then plain, ...): the machine's speed drifts by
tens of percent over the minutes a SpectoGAN step pair takes (other tenants), and whichever
ran first was the faster one (2026-12-01: product/plain 0.90 with the plain loop always
first, 1.15 with the product first), so a fixed order measures the order. The ratio is the
median of the pairs' ratios, never a ratio of runs minutes apart.

PianoGAN also runs the plain loop with `audiogan.conv1d`'s GEMM form switched off (the
oneDNN convolutions of before), and times each k25/s4 layer both ways at the preset's
sizes (`pianogan_layers`): where a PianoGAN step spends its time.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from typing import Any, Iterator

import torch

from audiogan.bench.train_common import (plain_models, plain_seconds_per_step, report_log_run,
                                         synthetic_dataset)
from audiogan.config import Config, resolve

THREADS = 2
MATMUL_N = 2048
TARGETS = {"spectogan_product_over_plain_share": ">= 0.95",
           "pianogan_share_over_onednn_share": ">= 1.2"}
STEPS = {"spectogan": (1, 2), "pianogan": (2, 12)}   # (warm-up, timed) in the plain loop
PAIRS = {"spectogan": 2, "pianogan": 4}   # even: as many pairs with each order
FULL_PRESETS = ("spectogan", "pianogan")


def matmul_rate(threads: int, n: int = MATMUL_N, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matmul on `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


@contextlib.contextmanager
def onednn_only() -> Iterator[None]:
    """PianoGAN's convolutions as before `audiogan.conv1d`: all oneDNN."""
    from audiogan import conv1d

    saved = conv1d.GEMM_MAX_POSITIONS, conv1d.GEMM_MAX_IN_CHANNELS
    conv1d.GEMM_MAX_POSITIONS = conv1d.GEMM_MAX_IN_CHANNELS = 0
    try:
        yield
    finally:
        conv1d.GEMM_MAX_POSITIONS, conv1d.GEMM_MAX_IN_CHANNELS = saved


def step_flops(cfg: Config, data: str) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from audiogan import wgan

    g, c, opt_g, opt_c, batches, next_z, loss, precision = plain_models(cfg, data)
    with FlopCounterMode(display=False) as counter:
        wgan.train_step(g, c, opt_g, opt_c, batches, next_z, loss, precision=precision)
    return int(counter.get_total_flops())


def layer_times(cfg: Config, threads: int, repeats: int = 3) -> list[dict[str, Any]]:
    """Each PianoGAN k25/s4 layer, oneDNN vs GEMM: critic layers forward + double backward
    on real+fake+interpolates (3 x batch), generator layers forward + backward (batch)."""
    from audiogan.conv1d import GemmConv1d, GemmConvTranspose1d

    torch.set_num_threads(threads)
    d, batch = cfg.model.d, cfg.optim.batch_size
    layers = [("critic 1", GemmConv1d(3, 2 * d, 25, stride=4, padding=11), (3 * batch, 3, 256)),
              ("critic 2", GemmConv1d(2 * d, 4 * d, 25, stride=4, padding=11),
               (3 * batch, 2 * d, 64)),
              ("critic 3", GemmConv1d(4 * d, 8 * d, 25, stride=4, padding=11),
               (3 * batch, 4 * d, 16))]
    layers += [(f"generator {i + 1}",
                GemmConvTranspose1d(a, b, 25, stride=4, padding=11, output_padding=1),
                (batch, a, n))
               for i, (a, b, n) in enumerate([(8 * d, 4 * d, 4), (4 * d, 2 * d, 16),
                                              (2 * d, 3, 64)])]
    rows = []
    for name, layer, shape in layers:
        x = torch.randn(*shape)
        double = name.startswith("critic")

        def once() -> None:
            xi = x.clone().requires_grad_(double)
            y = layer(xi)
            if double:
                (grad,) = torch.autograd.grad((y ** 2).sum(), xi, create_graph=True)
                grad.norm().backward()
            else:
                (y ** 2).sum().backward()

        times = {}
        for mode, ctx in (("onednn", onednn_only), ("gemm", contextlib.nullcontext)):
            with ctx():
                once()
                best = float("inf")
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    once()
                    best = min(best, time.perf_counter() - t0)
            times[mode] = best
        rows.append({"layer": name, "input": list(shape), "uses_gemm": layer.use_gemm(x),
                     "onednn_ms": round(1e3 * times["onednn"], 1),
                     "gemm_ms": round(1e3 * times["gemm"], 1)})
    return rows


def product_reports(cfg: Config, data: str, steps: int, work: str) -> list[dict[str, Any]]:
    """`audiogan train`'s TorchTrainer (1 worker) for `steps` steps: its reports (by time,
    the default), at least two."""
    reports = report_log_run(cfg, data, 1, steps, work)
    if len(reports) < 2:
        raise RuntimeError(f"one report in {steps} steps: cannot time a steady state")
    return reports


def report_timing(reports: list[dict[str, Any]]) -> dict[str, float]:
    """Wall seconds per step between the first and last report, and the mean in-step time
    after the first (warm-up) interval."""
    first, last = reports[0], reports[-1]
    return {"wall": (last["time/elapsed_s"] - first["time/elapsed_s"])
            / (last["progress/step"] - first["progress/step"]),
            "in_step": statistics.mean(r["time/step_s"] for r in reports[1:])}


def product_seconds_per_step(cfg: Config, data: str, steps: int, work: str) -> float:
    """The product's steady-state wall seconds per step between its first and last report
    (evaluation excluded)."""
    return report_timing(product_reports(cfg, data, steps, work))["wall"]


def full_preset(preset: str, threads: int, quick: bool, work: str, tag: str
                ) -> tuple[Config, str]:
    """A full preset's config on `threads` threads (tiny with `quick`), and a synthetic
    dataset of its kind under `work` (named by `tag`)."""
    over = {"compute.cpus_per_worker": threads, "metrics.n_samples": 64, "metrics.ndb_k": 8}
    if quick:
        over.update({"model.d": 4, "optim.batch_size": 8, "train.report_every_s": 0.5})
    cfg = resolve(preset, over)
    kind = "notes" if cfg.model.family == "pianogan" else "spectrogram"
    return cfg, synthetic_dataset(os.path.join(work, f"{tag}-{preset}"), kind, 128)


def bench_full(quick: bool, work: str, presets: tuple[str, ...] = FULL_PRESETS,
               n_pairs: int | None = None) -> dict[str, Any]:
    """`presets` (a subset of FULL_PRESETS) with `n_pairs` pairs each (PAIRS[preset] when
    None). Each preset's row carries the matmul reference its shares were taken against."""
    size = 256 if quick else MATMUL_N
    out: dict[str, Any] = {"threads": THREADS, "matmul": {"n": size, "threads": THREADS},
                           "targets": TARGETS}
    out["matmul"]["gflop_s"] = matmul_rate(THREADS, size)
    rate = out["matmul"]["gflop_s"] * 1e9
    for preset in presets:
        cfg, data = full_preset(preset, THREADS, quick, work, "full")
        warmup, timed = (1, 2) if quick else STEPS[preset]
        flops = step_flops(cfg, data)
        pairs = []
        total = 0  # the product's run length, fixed by the first pair (plain first)
        for i in range(1 if quick else n_pairs or PAIRS[preset]):
            first = "plain" if i % 2 == 0 else "product"
            if first == "plain":
                plain = plain_seconds_per_step(cfg, data, warmup, timed)
            # The product reports by time (the default): run long enough for 3+ reports.
            total = total or max(warmup + timed,
                                 math.ceil(2.5 * cfg.train.report_every_s / plain)) + 1
            product = product_seconds_per_step(cfg, data, total, work)
            if first == "product":
                plain = plain_seconds_per_step(cfg, data, warmup, timed)
            pair = {"first": first, "plain_s_per_step": plain, "product_s_per_step": product,
                    "product_over_plain": plain / product,
                    "matmul_gflop_s": matmul_rate(THREADS, size)}
            if preset == "pianogan":  # the convolutions before conv1d's GEMM form, same pair
                with onednn_only():
                    pair["onednn_plain_s_per_step"] = plain_seconds_per_step(cfg, data, warmup,
                                                                             timed)
                pair["share_over_onednn_share"] = pair["onednn_plain_s_per_step"] / plain
            pairs.append(pair)
        plain = statistics.median(p["plain_s_per_step"] for p in pairs)
        product = statistics.median(p["product_s_per_step"] for p in pairs)
        row = {"d": cfg.model.d, "batch_size": cfg.optim.batch_size,
               "n_critic": cfg.loss.n_critic, "tflop_per_step": flops / 1e12,
               "plain_s_per_step": plain, "product_s_per_step": product,
               "plain_share_of_matmul": flops / plain / rate,
               "product_share_of_matmul": flops / product / rate, "pairs": pairs,
               "matmul": dict(out["matmul"])}
        row["product_over_plain_share"] = statistics.median(
            p["product_over_plain"] for p in pairs)
        if preset == "pianogan":
            before = statistics.median(p["onednn_plain_s_per_step"] for p in pairs)
            row["onednn_plain_s_per_step"] = before
            row["onednn_plain_share_of_matmul"] = flops / before / rate
            row["share_over_onednn_share"] = statistics.median(
                p["share_over_onednn_share"] for p in pairs)
            row["layers"] = layer_times(cfg, THREADS, 1 if quick else 3)
        out[preset] = row
    return out
