"""The demo report copies its numbers from the commands' own records, never retypes them."""

import csv
import json
import os

from audiogan.report import write_demo_report


def _fake_best(out, family, value, ndb, floor):
    best = os.path.join(out, "best", family)
    os.makedirs(os.path.join(best, "samples"))
    with open(os.path.join(best, "leaderboard.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, ["rank", "trial_id", "status", "best eval/ndb", "checkpoint"])
        w.writeheader()
        w.writerow({"rank": 1, "trial_id": "aaa", "status": "TERMINATED",
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
    _fake_best(out, "spectogan", 0.375, 0.375, 0.0625)
    text = open(write_demo_report(out, {"data": 1.5}, total_s=3)).read()
    assert "| 1 | aaa | TERMINATED | 0.625 |" in text
    assert "| eval/ndb | 0.625 | 0.125 |" in text and "| eval/ndb | 0.375 | 0.0625 |" in text
    assert "Rendering backend: **sine**" in text and "seed_0000.wav" in text
    assert "`audiogan data demo --out" in text and "/x" not in text
