"""The demo report copies its numbers from the commands' own records, never retypes them."""

import csv
import json
import os

from audiogan.report import write_demo_report


def _fake_best(out, family, value, ndb, floor, trial_id="aaa"):
    best = os.path.join(out, "best", family)
    os.makedirs(os.path.join(best, "samples"))
    with open(os.path.join(best, "leaderboard.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, ["rank", "trial_id", "status", "best eval/ndb", "checkpoint"])
        w.writeheader()
        w.writerow({"rank": 1, "trial_id": trial_id, "status": "TERMINATED",
                    "best eval/ndb": value, "checkpoint": "/x"})
    json.dump({"trial_id": "aaa", "metric": "eval/ndb", "mode": "min", "value": value,
               "at_critic_steps": 40, "trials": 1, "scope": "all evaluations",
               "params": {"optim.lr_g": 1e-4}}, open(os.path.join(best, "best.json"), "w"))
    json.dump({"checkpoint": "c", "step": 8, "n_samples": 24, "ndb_k": 4, "floor_split": "test",
               "metrics": {"eval/ndb": ndb}, "floor": {"eval/ndb": floor}},
              open(os.path.join(best, "metrics.json"), "w"))
    json.dump({"rendering_backend": "sine", "seeds": [0], "config_hash": "h",
               "files": ["seed_0000.wav"]}, open(os.path.join(best, "samples", "samples.json"), "w"))


def test_report_numbers_come_from_the_records(tmp_path):
    out = str(tmp_path)
    _fake_best(out, "pianogan", 0.625, 0.625, 0.125)
    # A trial id that reads as a number (419e1623 = infinity) stays the id.
    _fake_best(out, "spectogan", 0.375, 0.375, 0.0625, trial_id="419e1623")
    commands = [("data", ("data", "demo", "--out", "raw")),
                ("classifier", ("classifier", "train")), ("sweep", ("sweep", "x.yaml"))]
    # data 0-1.5 s, the classifier beside it 0.5-4.0 s: the preparation's wall time is 4.0
    spans = {"data": (0.0, 1.5), "classifier": (0.5, 4.0), "sweep": (4.0, 9.0)}
    text = open(write_demo_report(out, {"data": 1.5, "classifier": 3.5, "sweep": 5.0},
                                  total_s=9, commands=commands, spans=spans,
                                  prepare=("data", "classifier"))).read()
    assert "run two at a time: 4.0 s of wall time" in text
    assert "| classifier | 0.5 | 3.5 | `audiogan classifier train` |" in text
    assert "| 1 | aaa | TERMINATED | 0.625 |" in text
    assert "| 1 | 419e1623 | TERMINATED | 0.375 |" in text
    assert "| eval/ndb | 0.625 | 0.125 |" in text and "| eval/ndb | 0.375 | 0.0625 |" in text
    assert "Rendering backend: **sine**" in text and "seed_0000.wav" in text
    assert "`audiogan data demo --out" in text and "/x" not in text


def test_sweep_report_and_results_row_read_best_json(tmp_path):
    from audiogan.report import write_results_index, write_sweep_report

    results = tmp_path / "results"
    _fake_best(str(results / "sweeps" / "x"), "", 0.25, 0.25, 0.0625)
    best = results / "sweeps" / "x" / "best"
    info = json.load(open(best / "best.json"))
    info.update(trials=9, max_critic_steps=6000, stopped_early_by_asha=4,
                trials_by_status={"TERMINATED": 9}, date="2026-11-25",
                baseline={"trial_id": "bbb", "value": 0.5, "at_critic_steps": 3000, "critic_steps": 3000,
                          "params": {"loss.n_critic": 5}, "is_best": False})
    json.dump(info, open(best / "best.json", "w"))
    os.rename(best, results / "sweeps" / "real")
    os.rmdir(results / "sweeps" / "x")
    full = results / "sweeps" / "real" / "baseline-full-budget"
    full.mkdir()
    (full / "curves.csv").write_text("key,step,value\neval/ndb,1000,1.0\nloss/critic,1000,3\n"
                                     "eval/ndb,2000,0.9\n")
    # Renders joined after sampling (the sample command never listed them) are linked too.
    (results / "sweeps" / "real" / "samples" / "seeds_0-2.mid").write_bytes(b"MThd")
    text = open(write_sweep_report(str(results / "sweeps" / "real"), "Real", ["audiogan sweep s.yaml"])).read()
    assert "- not kept here (1): seed_0000.wav;" in text
    assert "- added after sampling: [seeds_0-2.mid](samples/seeds_0-2.mid)" in text
    assert "(`baseline-full-budget/`, `eval/ndb` by critic step): 1 at 5000, 0.9 at 10000; best 0.9." in text
    assert "ASHA stopped 4 early" in text and "9 TERMINATED" in text
    assert "WaveGAN defaults (trial `bbb`, `loss.n_critic`=5): 0.5 at critic step 3000 " \
           "(ASHA stopped it at 3000 critic steps)" in text
    assert "best trial `aaa`: 0.25" in text and "audiogan sweep s.yaml" in text
    index = open(write_results_index(str(results))).read()
    assert "| sweep real: best eval/ndb 0.25 (9 trials, 6000 critic steps each) | " \
           "WaveGAN defaults 0.5 | 0.5 | lower is better | 2026-11-25 |" in index


def test_results_index_reads_every_bench_target_from_the_json(tmp_path):
    """Targets come from the bench JSON: changed there, changed in the table."""
    import re

    from audiogan.report import write_results_index

    committed = os.path.join(os.path.dirname(__file__), "..", "results", "bench")
    bench = tmp_path / "results" / "bench"
    bench.mkdir(parents=True)
    data = {n: json.load(open(os.path.join(committed, f"{n}.json")))
            for n in ("preprocess", "train", "sample", "sweep")}
    data["preprocess"]["targets"] = {"ray_data_vs_pool2": ">= 0.111",
                                     "peak_mib_x4_over_x1": "<= 1.222"}
    for preset in data["train"]["presets"].values():
        preset["targets"] = {"ratio_ray1_over_plain": ">= 0.333",
                             "speedup_2_over_1_workers": ">= 1.444"}
    data["sample"]["spectogan"]["wall_clock"]["targets"] = {
        "generator_fraction_of_matmul": ">= 0.555", "end_to_end_over_generator": "<= 1.666"}
    data["sweep"]["targets"] = {"efficiency": ">= 0.777", "overhead_per_trial_s": "<= 8.88"}
    data["sample"]["spectogan"]["wall_clock"]["griffin_lim_reference"] = {
        "implementation": "librosa.griffinlim", "clips": 64, "settings": {"n_iter": 16},
        "librosa_s_per_batch": [1.5], "audiogan_s_per_batch": [0.25],
        "librosa_time_over_audiogan": 6.0}
    full_row = {"d": 64, "batch_size": 64, "plain_s_per_step": 2.0, "product_s_per_step": 2.1,
                "plain_share_of_matmul": 0.5, "product_share_of_matmul": 0.48,
                "product_over_plain_share": 0.952}
    data["train"]["full_presets"] = {
        "matmul": {"n": 2048, "threads": 2, "gflop_s": 300.0},
        "targets": {"spectogan_product_over_plain_share": ">= 0.919",
                    "pianogan_share_over_onednn_share": ">= 1.818"},
        "spectogan": {**full_row, "pairs": [{"product_over_plain": 0.97},
                                            {"product_over_plain": 0.93}]},
        # A row kept from an earlier run (`--presets spectogan`): its own date and matmul.
        "pianogan": {**full_row, "onednn_plain_s_per_step": 4.0,
                     "onednn_plain_share_of_matmul": 0.25, "share_over_onednn_share": 2.0,
                     "date": "2026-10-31", "matmul": {"n": 2048, "threads": 2,
                                                      "gflop_s": 150.0}}}
    alone = {"wall_steps_per_s": 3.0}
    data["train"]["reporting"] = {
        "report_every_s": 30.0, "targets": {"loss_to_reporting": "<= 0.0707",
                                            "tune_over_standalone": ">= 0.808"},
        "standalone": [{"preset": "pianogan-cpu", "n_critic": 1, "workers": 2, "loss": 0.01,
                        "wall_steps_per_s": 2.9, "in_step_steps_per_s": 2.93}],
        "tune": {"preset": "pianogan-cpu", "standalone": alone, "in_tune": {"wall_steps_per_s": 2.7},
                 "tune_over_standalone": 0.9}}
    data["train"]["precision"] = {
        "targets": {"bf16_within_seed_spread": "within the spread (test)"},
        "speed": {"spectogan-cpu": {"steps_per_s": {"fp32": 2.0, "bf16": 1.0, "compile": 2.2},
                                    "bf16_over_fp32": 0.5, "compile_over_eager": 1.1,
                                    "compile_warmup_s": 30.0}},
        "bf16_check": {"steps": 300, "within": {"eval/ndb": True, "loss/wdist": False},
                       "bf16_seconds_over_fp32": 2.0}}
    gap_round = {"plain_s": 2.0, "thread_s": 2.1, "ray_task_s": 2.0, "train_worker_s": 2.2,
                 "loop_local_s": 2.0, "product_in_step_s": 2.3, "product_s": 2.4}
    data["train"]["full_preset_gap"] = {
        "preset": "pianogan", "d": 64, "batch_size": 64, "rounds": [
            {**gap_round, "train_worker_over_ray_task": 0.95, "thread_over_plain": 0.952},
            {**gap_round, "train_worker_s": 2.4, "train_worker_over_ray_task": 0.85,
             "thread_over_plain": 0.952}],
        "train_worker_over_ray_task": 0.9, "thread_over_plain": 0.952}
    for name, d in data.items():
        json.dump(d, open(bench / f"{name}.json", "w"))
    index = open(write_results_index(str(tmp_path / "results"))).read()
    assert "(median of 2 interleaved pairs, 0.93-0.97)" in index
    piano = [line for line in index.splitlines() if "oneDNN convolutions only" in line]
    assert len(piano) == 1 and "threads: 150 GFLOP/s" in piano[0] and "2026-10-31" in piano[0]
    spec = [line for line in index.splitlines() if "plain PyTorch loop 2.0 s/step" in line]
    assert len(spec) == 1 and "threads: 300 GFLOP/s" in spec[0] and "2026-10-31" not in spec[0]
    # The gap's layers: each against the one below it, with the rounds' spread; a layer
    # whose ratio an older run did not measure has no row.
    assert re.search(r"bare 1-worker TorchTrainer's training function 2.30 s/step \| the plain "
                     r"loop in a Ray task 2.00 s/step \(median of 2 rounds, orders alternating, "
                     r"0.85-0.95\) \| 0.9\d* ", index), index
    assert "the plain loop in a Python thread 2.10 s/step" in index
    assert "audiogan's loop without Ray" not in index
    targets = {}
    for line in index.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("measure", "---"):
            targets[cells[0]] = cells[3]

    def target(pattern):
        found = [t for m, t in targets.items() if re.search(pattern, m)]
        assert found, pattern
        return set(found)

    assert target(r"^preprocess \w+: Ray Data files/s") == {">= 0.111"}
    assert target(r"^preprocess \w+: peak memory") == {"<= 1.222"}
    assert target(r"^train .*: Ray Train 1 worker") == {">= 0.333"}
    assert target(r"^train .*: 2 workers") == {">= 1.444"}
    assert target(r"^sample SpectoGAN d=") == {">= 0.555"}
    assert target(r"^sample SpectoGAN: end to end") == {"<= 1.666"}
    assert target(r"^sample SpectoGAN: librosa.griffinlim on the same 64 clips \(1.5 s\)") == \
        {"(reported)"}
    assert target(r"^sweep, 1-worker") == {"efficiency >= 0.777, overhead <= 8.88 s"}
    # No target recorded: the row says so instead of inventing one.
    assert target(r"^sweep, 2-worker") == {"(reported)"}
    assert target(r"^train spectogan \(d=64, batch 64\): product") == {">= 0.919"}
    assert target(r"^train pianogan \(d=64, batch 64\): plain loop") == {">= 1.818"}
    assert target(r"^train pianogan-cpu n_critic 1, 2 worker\(s\).*lost to reporting") == {"<= 0.0707"}
    assert target(r"^train pianogan-cpu: 2-worker trial inside Tune") == {">= 0.808"}
    assert target(r"^train spectogan-cpu: bf16 autocast") == {"(reported)"}
    assert target(r"^train spectogan-cpu 300 steps bf16: .*1 of 2") == {"within the spread (test)"}


def test_bench_meets_reads_the_recorded_target_form():
    import pytest

    from audiogan.bench import meets

    assert meets(0.9, ">= 0.85") and not meets(0.8, ">= 0.85")
    assert meets(5.0, "<= 5.0") and not meets(5.1, "<= 5.0")
    with pytest.raises(ValueError):
        meets(1.0, "flat (~1.0)")


def test_sweep_report_shows_the_final_stage_from_best_json(tmp_path):
    """The final block that `audiogan best` copies into best.json, as `final.summarize`
    writes it, becomes the report's intervals, replicate means and verdicts."""
    from audiogan.report import write_sweep_report
    from audiogan.sweep.final import summarize
    from audiogan.sweep.spec import parse_spec

    spec = parse_spec({"base": "pianogan-cpu", "baseline": True, "final": {"replicates": 3},
                       "search": {"optim.lr_g": {"type": "loguniform", "low": 1e-5,
                                                 "high": 1e-3}}})

    def record(trial, roles, v, seed=None):
        return {"trial_id": trial, "roles": roles, "params": {"train.seed": seed},
                "checkpoint": f"/c/{trial}", "trial_time": {"critic_steps": 500},
                "metrics": {"final/eval/ndb": {"value": v, "lo": v - 0.05, "hi": v + 0.05}},
                "matched": {"n": 200, "model": {"final/eval/ndb": {"value": v, "lo": 0.1,
                                                                    "hi": 0.4}},
                            "floor": {"final/floor/ndb": {"value": 0.04, "lo": 0.0, "hi": 0.1}}}}

    best, base = record("aaa", ["top-1"], 0.3), record("bbb", ["baseline"], 0.62)
    plan = {"seeds": [1, 2, 3], "original_seed": 0,
            "entries": [{"role": r, "source": s, "seed": k, "params": {}}
                        for r, s in (("best", "aaa"), ("baseline", "bbb")) for k in (1, 2, 3)]}
    reps = [record(f"b{k}", ["replicate of best"], 0.3 + 0.01 * k, k) for k in (1, 2, 3)]
    reps += [record(f"c{k}", ["replicate of baseline"], 0.6 + 0.01 * k, k) for k in (1, 2, 3)]
    final = summarize(spec, spec.final, [best, base], best, plan, reps)
    _fake_best(str(tmp_path), "", 0.25, 0.25, 0.0625)
    info = json.load(open(tmp_path / "best" / "best.json"))
    json.dump({**info, "final": final, "picked_by": "final evaluation"},
              open(tmp_path / "best" / "best.json", "w"))
    text = open(write_sweep_report(str(tmp_path / "best"), "R", [])).read()
    assert "picked by the final evaluation" in text
    assert "| `aaa` | top-1 | 500 | 0.3 [0.25, 0.35] |" in text
    assert "0.3 [0.1, 0.4] vs 0.04 [0, 0.1]" in text
    assert "`eval/ndb` better (0.3 [0.25, 0.35] vs 0.62 [0.57, 0.67])" in text
    assert "| best | `aaa` | 3 | 0.32 [0.2952, 0.3448] |" in text
    assert "best vs baseline over seeds: **better** (intervals; Welch t-test p = " in text
    # The results index shows the final stage's verdict, not one trial-time evaluation.
    from audiogan.report import write_results_index

    sweep = tmp_path / "results" / "sweeps" / "fin"
    sweep.mkdir(parents=True)
    json.dump({**info, "final": final, "baseline": {"trial_id": "bbb", "value": 0.5}},
              open(sweep / "best.json", "w"))
    index = open(write_results_index(str(tmp_path / "results"))).read()
    assert "| sweep fin, final (n 2000, K 50): best eval/ndb 0.3 [0.25, 0.35] | " \
           "paper's recipe 0.62 [0.57, 0.67] | 0.4839 | lower is better; intervals: better; seed " \
           "replicates' intervals: better (Welch t-test p = " in index
    assert "best eval/ndb 0.25 (" not in index  # the trial-time row is replaced
