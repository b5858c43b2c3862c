"""No Ray process started by an `audiogan` command outlives it: normal exit, Ctrl-C, error.

Each command runs with its own marker and RAY_TMPDIR (procs.Command), so processes of other
clusters on the machine are never counted. Normal exit of `train` and `sweep` is checked on
the runs of test_training_faults / test_sweep_faults; here: `preprocess` (normal), `train`
interrupted with SIGINT (what Ctrl-C sends), and `train` failing (NaN)."""

from __future__ import annotations

import re
import signal

import pytest

from tests.data.data_fixtures import piano_midi, write_midi
from tests.fixtures import make_dataset
from tests.reliability.procs import Command, ray_daemons, record
from tests.reliability.test_training_faults import train_argv

pytestmark = pytest.mark.slow


def _finish(cmd: Command, timeout_s: float = 300) -> tuple[int, dict, dict]:
    try:
        rc = cmd.wait(timeout_s)
        left = cmd.leftovers()
        seen = ray_daemons({p: c for p, c in left.items()})
    finally:
        cmd.cleanup()
    return rc, left, seen


def test_preprocess_normal_exit_leaves_nothing(tmp_path):
    for i in range(3):
        write_midi(tmp_path / "src" / f"p{i}.mid" if (tmp_path / "src").mkdir(exist_ok=True)
                   is None else None, piano_midi(20, seed=i))
    cmd = Command(["preprocess", "midi-dir", "--source", str(tmp_path / "src"), "--out",
                   str(tmp_path / "out"), "--window", "8", "--hop", "4"])
    rc, left, daemons = _finish(cmd)
    assert rc == 0, cmd.output[-2000:]
    assert left == {}, left
    record("processes_preprocess_exit", rc=rc, left=len(left))


def test_train_ctrl_c_leaves_nothing(tmp_path):
    data = make_dataset(tmp_path / "data", "notes", n_train=8)
    cmd = Command(train_argv(data, tmp_path / "run", total_steps=100000, workers=1))
    started = cmd.wait_for(lambda: re.search(r"\bstep \d+/", cmd.output) is not None, 240)
    assert started, cmd.output[-3000:]
    alive_before = len(cmd.leftovers(grace_s=0))
    cmd.signal(signal.SIGINT)
    rc, left, daemons = _finish(cmd, 120)
    assert rc == 130 and "interrupted" in cmd.output, cmd.output[-2000:]
    assert left == {}, left
    record("processes_train_sigint", rc=rc, processes_while_running=alive_before, left=len(left))


def test_train_error_exit_leaves_nothing(tmp_path):
    data = make_dataset(tmp_path / "data", "notes", n_train=8)
    cmd = Command(train_argv(data, tmp_path / "run", total_steps=20, workers=1),
                  env={"AUDIOGAN_FAULT_HOOKS": '{"nan_at_step": 2}'})
    rc, left, daemons = _finish(cmd)
    last = cmd.output.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("audiogan: error: non-finite loss at step 2"), \
        cmd.output[-2000:]
    assert left == {}, left
    record("processes_train_error", rc=rc, left=len(left), message=last[:100])
