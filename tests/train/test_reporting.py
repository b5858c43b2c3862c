"""Reporting by time: rank 0 decides, every rank reports at the same steps, each report
carries the mean over its interval, and checkpoints keep their step schedule."""

from __future__ import annotations

import json
import os

import pytest
import torch.multiprocessing as mp

from audiogan.cluster.hooks import FaultHooks
from audiogan.cluster.session import LocalSession
from audiogan.config import resolve
from audiogan.sweep.keys import BUDGET_SPENT
from audiogan.train.loop import train_loop
from tests.fixtures import make_dataset

TINY = ["model.d=2", "optim.batch_size=2", "metrics.n_samples=8", "metrics.ndb_k=2"]
LOSSES = ("loss/critic", "loss/gp", "loss/wdist", "loss/gen")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("rep") / "data", "notes", n_train=8)


def _run(data, overrides, hooks=FaultHooks()):
    cfg = resolve("pianogan-cpu", TINY + overrides)
    session = LocalSession()
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session,
               hooks=hooks)
    return session.reports


def test_time_based_reports_are_the_mean_of_their_interval(data):
    every_step = _run(data, ["train.total_steps=12", "train.eval_every=12",
                             "train.report_every=1"])
    by_time = _run(data, ["train.total_steps=12", "train.eval_every=12",
                          "train.report_every=0", "train.report_every_s=0.25"],
                   FaultHooks(step_sleep_s=0.1))
    steps = [r["progress/step"] for r in by_time]
    assert 1 < len(steps) < 12 and steps[-1] == 12   # several steps per report
    start = 0
    for report in by_time:
        end = report["progress/step"]
        interval = every_step[start:end]
        for key in LOSSES:
            assert report[key] == pytest.approx(sum(r[key] for r in interval) / len(interval),
                                                rel=1e-9, abs=1e-12)
        start = end


def test_checkpoints_are_never_delayed_by_the_report_clock(data):
    reports = _run(data, ["train.total_steps=9", "train.eval_every=3", "train.report_every=0",
                          "train.report_every_s=3600"])
    assert [r["progress/step"] for r in reports] == [3, 6, 9]
    assert all("eval/ndb" in r for r in reports)


class _RankSession(LocalSession):
    def __init__(self, rank: int, log: str) -> None:
        super().__init__()
        self.world_rank, self.world_size, self.log = rank, 2, log

    def report(self, metrics, checkpoint_dir=None):
        with open(self.log, "a") as f:
            f.write(json.dumps({"step": metrics["progress/step"],
                                "loss/critic": metrics["loss/critic"]}) + "\n")


def _rank_main(rank: int, root: str, data: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{root}/store", rank=rank,
                            world_size=2)
    try:
        cfg = resolve("pianogan-cpu", TINY + ["train.total_steps=10", "train.eval_every=100",
                                              "train.report_every=0",
                                              "train.report_every_s=0.3"])
        # Rank 1 steps at another pace; only rank 0's clock decides.
        hooks = FaultHooks(step_sleep_s=0.1 if rank == 0 else 0.02)
        train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None},
                   session=_RankSession(rank, os.path.join(root, f"rank{rank}.jsonl")),
                   hooks=hooks)
    finally:
        dist.destroy_process_group()


def test_two_ranks_report_at_the_same_steps_with_the_same_means(data, tmp_path):
    mp.start_processes(_rank_main, args=(str(tmp_path), data), nprocs=2, start_method="spawn")
    logs = [[json.loads(line) for line in open(tmp_path / f"rank{r}.jsonl")] for r in (0, 1)]
    assert logs[0] == logs[1]                       # same steps, same all-reduced means
    steps = [r["step"] for r in logs[0]]
    assert 1 < len(steps) < 10 and steps[-1] == 10


def test_time_budget_stops_with_a_final_checkpoint_and_resumes_counting(data, tmp_path):
    """train.time_budget_s: training time (evaluation excluded) summed over attempts."""
    over = ["train.total_steps=1000", "train.eval_every=4", "train.report_every=1",
            "train.time_budget_s=2.0"]
    cfg = resolve("pianogan-cpu", TINY + over)
    first = LocalSession(checkpoint_root=str(tmp_path / "a"))
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=first,
               hooks=FaultHooks(step_sleep_s=0.25))
    assert len(first.reports) >= 2
    last, before = first.reports[-1], first.reports[-2]
    # Stopped at the first step past the budget, with a scored final checkpoint.
    assert before["time/train_s"] < 2.0 <= last["time/train_s"]
    assert "eval/ndb" in last and first.checkpoints[-1].endswith(f"{last['progress/step']:08d}")
    # Only the last report says the budget ended the run (a sweep then does not count the
    # trial as stopped early by its scheduler).
    assert [r.get(BUDGET_SPENT) for r in first.reports] == [None] * (len(first.reports) - 1) + [1]
    # The same budget again: already spent, nothing to train.
    again = LocalSession(resume_from=first.checkpoints[-1])
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=again)
    assert again.reports == []
    # A larger budget continues from the step, counting the time already spent.
    more = cfg.override({"train.time_budget_s": 3.5})
    cont = LocalSession(resume_from=first.checkpoints[-1])
    train_loop({"cfg": more.to_dict(), "data": data, "run_dir": None}, session=cont,
               hooks=FaultHooks(step_sleep_s=0.25))
    assert cont.reports[0]["progress/step"] == last["progress/step"] + 1
    assert cont.reports[0]["time/train_s"] > last["time/train_s"]
    assert cont.reports[-2]["time/train_s"] < 3.5 <= cont.reports[-1]["time/train_s"]
