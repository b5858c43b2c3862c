"""`audiogan train` on Ray Train: one 2-worker DDP run (killed worker recovered), its resume,
and a diverging run. Tiny widths and data; the session-scoped `ray_cluster` is shared."""

import argparse
import json
import os

import pytest
import torch
import yaml

from audiogan.cluster.hooks import FaultHooks
from audiogan.errors import UserError
from audiogan.train import run
from audiogan.train.checkpoint import load_checkpoint
from tests.fixtures import make_dataset

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = ["model.d=2", "optim.batch_size=4", "train.eval_every=2", "train.report_every=2",
        "metrics.n_samples=8", "metrics.ndb_k=2", "train.keep_best=1", "train.max_failures=1"]


def _args(data, out, total_steps, workers=1, extra=(), hooks=FaultHooks()):
    return argparse.Namespace(preset="pianogan-cpu", data=str(data), out=str(out),
                              overrides=TINY + list(extra), workers=workers, gpu=False,
                              total_steps=total_steps, address=None, dry_run=False,
                              fault_hooks=hooks)


def _ckpts(out):
    return sorted(d for d in os.listdir(out) if d.startswith("checkpoint_"))


@pytest.fixture(scope="module")
def ddp_run(ray_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    data = make_dataset(root / "data", "notes", n_train=12, n_validation=4, n_test=4)
    out = root / "run"
    hooks = FaultHooks(exit_at_step=5, exit_marker=str(root / "killed"),
                       param_dump_dir=str(root / "params"))
    rc = run.cli_main(_args(data, out, total_steps=6, workers=2, hooks=hooks))
    return root, data, out, rc


def test_run_writes_config_first_and_finishes(ddp_run):
    root, _, out, rc = ddp_run
    assert rc == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["compute"]["workers"] == 2 and cfg["train"]["total_steps"] == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["critic_steps"] == 30
    assert os.listdir(out / "tensorboard")


def test_killed_worker_was_recovered_from_checkpoint(ddp_run):
    root, _, out, _ = ddp_run
    assert (root / "killed").read_text() == "5"          # rank 1 died at step 5 ...
    meta = load_checkpoint(str(out / "checkpoint_00000006")).meta
    assert meta["start_step"] == 4                         # ... the group restarted from step 4


def test_ddp_replicas_stay_identical(ddp_run):
    root = ddp_run[0]
    r0 = torch.load(root / "params" / "rank0.pt", weights_only=True)
    r1 = torch.load(root / "params" / "rank1.pt", weights_only=True)
    assert r0.keys() == r1.keys()
    assert all(torch.equal(r0[k], r1[k]) for k in r0)


def test_keeps_best_k_plus_latest(ddp_run):
    out = ddp_run[2]
    kept = _ckpts(out)
    assert "checkpoint_00000006" in kept and len(kept) <= 2   # keep_best=1 + the latest


def test_same_command_resumes_from_latest_step_then_nan_is_one_line(ddp_run, capsys):
    """One more fit feeds two checks: resume from step 6, and a NaN at step 8 -> one line."""
    root, data, out, _ = ddp_run
    rc = run.cli_main(_args(data, out, total_steps=10, workers=1, extra=["train.ckpt_every=1"],
                            hooks=FaultHooks(nan_at_step=8)))
    meta = load_checkpoint(str(out / "checkpoint_00000007")).meta
    assert meta["start_step"] == 6 and meta["critic_steps"] == 35   # continued, not restarted
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith("audiogan: error: non-finite loss at step 8: loss/critic=nan")
    assert "loss/gen=" in err[-1]
    assert not os.path.exists(out / "checkpoint_00000008")
    assert json.loads((out / run.NONFINITE_MARKER).read_text())["message"] in err[-1]


def test_data_without_manifest_is_refused(tmp_path):
    with pytest.raises(UserError, match="manifest"):
        run.cli_main(_args(tmp_path, tmp_path / "run", total_steps=2))


def test_wrong_kind_is_refused(tmp_path):
    data = make_dataset(tmp_path / "spec", "spectrogram", n_train=2, n_validation=0, n_test=0)
    with pytest.raises(UserError, match="trains on notes"):
        run.cli_main(_args(data, tmp_path / "run", total_steps=2))
