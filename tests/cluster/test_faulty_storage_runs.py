"""Whole commands on object storage that fails in small ways: `preprocess`, `train` and a
concurrency-1 sweep, run through the fault-injecting proxy (5xx, throttling, resets
mid-upload, stalls, bodies cut off), give the results of runs without faults: the same
shards, the same trained weights bit for bit, the same trials and scores. `train` is the
TorchTrainer (Ray Train uploads its checkpoints); a 1-worker sweep trial runs the loop in
the Tune trial (Tune uploads them): both upload paths meet the faults. `train` runs twice:
first with one checkpoint's upload cut off for good (the run fails with one line, half a
checkpoint on the bucket), then the same command again under the faults, which resumes
from the complete checkpoint before it, with a warning, never from the half upload. The
fault-free `preprocess` and sweep run against the local S3 server directly; the fault-free
`train` is the same loop with the faulty run's own config.yaml, in this process without
Ray (a TorchTrainer's 15-20 s of start-up less), so it also checks that Ray Train and the
bucket change nothing of what is trained. Each sweep runs in a thread beside a `train`
(88 s in a row, 59-66 s so). The SDK's retries are logged (AUDIOGAN_S3_LOG_LEVEL=warn) in
the Ray workers' logs."""

from __future__ import annotations

import concurrent.futures
import contextlib
import glob
import io
import os
import time
import uuid
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from s3_faults import FaultPlan, fault_proxy
from s3_server import s3_uri

from audiogan import cli, storage
from audiogan.data import shards
from audiogan.train.checkpoint import META, MODEL, checkpoint_name
from tests.data.data_fixtures import piano_midi, write_midi
from tests.reliability.procs import record
from tests.sweep.conftest import SMOKE

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Every 12th request fails (about 650 requests: 50 faults, every kind several times); one
# fault in eight is a stall (1.5 s, past the 1 s request timeout), so the run stays short
# whatever the request count. (Every 8th: 65 faults, about 10 s longer.)
FAULTS = ("503", "reset", "500", "cut", "503", "reset", "500", "stall")
FAULT_EVERY = 12
TRAIN_STEPS = 8
# A checkpoint every 2 steps (step 4's is the one cut off); no Ray Train restarts: the cut
# run fails at once, and a fault the retries let through fails the test.
TRAIN = ["--total-steps", str(TRAIN_STEPS)] + [
    a for kv in ("model.d=2", "optim.batch_size=4", "train.eval_every=4",
                 "train.report_every=2", "metrics.n_samples=8", "metrics.ndb_k=2",
                 "train.ckpt_every=2", "train.max_failures=0")
    for a in ("--set", kv)]
SDK_RETRY = "Request failed, now waiting"


def _preprocess(base: str, source: str) -> str:
    """`audiogan preprocess midi-dir` into `base`/data; returns that data URI."""
    data = storage.join(base, "data")
    assert cli.main(["preprocess", "midi-dir", "--source", source, "--out", data,
                     "--window", "256", "--hop", "32"]) == 0
    return data


def _sweep(base: str, data: str) -> None:
    """A concurrency-1 sweep of 2 smoke trials into `base`/sweep."""
    from audiogan.sweep import run_sweep
    from audiogan.sweep.spec import parse_spec

    raw = yaml.safe_load(open(SMOKE))
    raw.update(num_samples=2, max_concurrent_trials=1, baseline=False, max_critic_steps=20,
               grace_critic_steps=20)
    assert run_sweep(parse_spec(raw), data, storage.join(base, "sweep"), "faults") == 0


def _local_train(run: str, data: str, root: str) -> str:
    """`run`'s own config.yaml trained on `data` in this process, without Ray (LocalSession):
    the final checkpoint's local directory."""
    from audiogan.cluster.session import LocalSession
    from audiogan.train.loop import train_loop

    cfg = yaml.safe_load(storage.read_bytes(storage.join(run, "config.yaml")))  # parsed there
    session = LocalSession(checkpoint_root=root)
    train_loop({"cfg": cfg, "data": data, "run_dir": None}, session=session)
    return session.checkpoints[-1]


def _shards(base: str) -> pa.Table:
    fs, inside = storage.resolve(storage.join(base, "data"))
    files = sorted(i.path for i in fs.get_file_info(
        pa.fs.FileSelector(f"{inside}/{shards.SHARDS}", recursive=True))
        if i.path.endswith(".parquet"))
    return pa.concat_tables([pq.read_table(f, filesystem=fs) for f in files]).sort_by("key")


def _weights(path: str) -> dict[str, torch.Tensor]:
    blob = storage.read_bytes(storage.join(path, MODEL))
    state = torch.load(io.BytesIO(blob), weights_only=True)
    return {f"{net}.{k}": v for net in ("generator", "critic") for k, v in state[net].items()}


def _board(base: str) -> pd.DataFrame:
    """The sweep's leaderboard, best first."""
    blob = storage.read_bytes(storage.join(base, "sweep", "leaderboard.csv"))
    return pd.read_csv(io.BytesIO(blob))


def _worker_logs(logs: str, pattern: str = "worker-*") -> Iterator[str]:
    """The text of each of Ray's worker logs (stdout `.out`, stderr `.err`)."""
    for path in glob.glob(os.path.join(logs, pattern)):
        with contextlib.suppress(OSError), open(path, errors="replace") as f:
            yield f.read()


def _sdk_retries(logs: str) -> int:
    """Lines in which the AWS SDK says it retries, over Ray's worker logs."""
    return sum(text.count(SDK_RETRY) for text in _worker_logs(logs, "worker-*.out"))


def test_preprocess_train_and_sweep_under_faults_equal_fault_free_runs(
        moto_endpoint, ray_cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(storage.S3_REQUEST_TIMEOUT_ENV, "1")
    # The SDK's retries are logged at warn; the level travels with the pickled filesystem
    # to the Ray workers (set for both runs: a worker keeps the level of its first S3 call).
    monkeypatch.setenv(storage.S3_LOG_LEVEL_ENV, "warn")
    monkeypatch.setenv("AUDIOGAN_STUDY_CACHE", str(tmp_path / "studies"))
    source = tmp_path / "midi"
    source.mkdir()
    for i in range(3):
        write_midi(source / f"song{i}.mid", piano_midi(300, seed=i))
    tag = uuid.uuid4().hex[:8]
    direct = s3_uri(moto_endpoint, f"clean-{tag}")
    plan = FaultPlan(every=FAULT_EVERY, faults=FAULTS, stall_s=1.5)
    logs = os.path.join(ray_cluster._private.worker._global_node.get_session_dir_path(), "logs")
    sdk_before = _sdk_retries(logs)
    # The sweeps run in a thread of this driver, each beside a `train` (Ray's 2 CPUs hold a
    # trial and a Train worker; the faulty runs spend much of their time waiting out faults).
    # (The pool is left first: a sweep still running on a failure keeps its proxy.)
    with fault_proxy(moto_endpoint, plan) as endpoint, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        clean_sweep = pool.submit(_sweep, direct, _preprocess(direct, str(source)))
        faulty = s3_uri(endpoint, f"faulty-{tag}")
        data = _preprocess(faulty, str(source))
        run = storage.join(faulty, "run")
        # The first `train`: step 4's upload is cut off for good after its first file, the
        # other faults paused (a 2-attempt bound would let two faults in a row fail earlier).
        plan.every, plan.one_file_in = 0, (checkpoint_name(4), "reset")
        resets = plan.injected.get("reset", 0)
        with monkeypatch.context() as m:
            m.setenv(storage.S3_MAX_ATTEMPTS_ENV, "2")
            t0 = time.monotonic()
            rc = cli.main(["train", "pianogan-cpu", "--data", data, "--out", run, *TRAIN])
            cut_s = time.monotonic() - t0
        cut_resets = plan.injected.get("reset", 0) - resets
        plan.every, plan.one_file_in = FAULT_EVERY, None
        # Before the faulty sweep: the same sweep name, bound once per driver process.
        clean_sweep.result()
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and cut_resets, (rc, plan.injected, err[-20:])
        # One line: what failed, and that the same command resumes. (The clean sweep's
        # thread may have logged after it.)
        errors = [line for line in err if line.startswith("audiogan: error: ")]
        assert len(errors) == 1 and checkpoint_name(4) in errors[0] \
            and "run the same command again" in errors[0], err[-20:]
        fs, inside = storage.resolve(storage.join(run, checkpoint_name(4)))
        half = {i.base_name for i in fs.get_file_info(pa.fs.FileSelector(
            inside, allow_not_found=True))}
        assert len(half) == 1, half  # the half upload on the bucket: one file of three
        # The same command again, every fault on: it resumes from step 2, never from 4.
        faulty_sweep = pool.submit(_sweep, faulty, data)
        t0 = time.monotonic()
        assert cli.main(["train", "pianogan-cpu", "--data", data, "--out", run, *TRAIN]) == 0
        resumed_s = time.monotonic() - t0
        faulty_sweep.result()
    injected = {**plan.injected, "reset": plan.injected.get("reset", 0) - cut_resets}
    assert sum(injected.values()) >= 20 and set(injected) == set(FAULTS), injected
    # Read both back directly, past the proxy.
    faulty = s3_uri(moto_endpoint, f"faulty-{tag}")
    run = storage.join(faulty, "run")
    assert _shards(faulty).equals(_shards(direct))
    meta = storage.read_json(storage.join(run, checkpoint_name(TRAIN_STEPS), META))
    assert meta["step"] == TRAIN_STEPS and meta["start_step"] == 2, meta
    # The warning, in the log of the Train worker that chose the checkpoint.
    warned = f"{inside} is incomplete (an interrupted upload?): skipped"
    assert any(warned in text for text in _worker_logs(logs)), warned
    # `train`'s final weights, bit for bit, after a cut-off run and a resume under faults
    last = _local_train(run, storage.join(direct, "data"), str(tmp_path / "local"))
    assert os.path.basename(last) == checkpoint_name(TRAIN_STEPS)
    wa, wb = _weights(last), _weights(storage.join(run, checkpoint_name(TRAIN_STEPS)))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    want, got = _board(direct), _board(faulty)
    same = [c for c in want.columns if c not in ("trial_id", "checkpoint")]
    assert len(want) == 2 and set(want["status"]) == {"TERMINATED"}, want.to_string()
    pd.testing.assert_frame_equal(got[same], want[same])
    # The faulty run's leaderboard names its checkpoints through the proxy (gone now).
    pairs = [(a, b.replace(endpoint, moto_endpoint))
             for a, b in zip(want["checkpoint"], got["checkpoint"])]
    for a, b in pairs:  # the trained weights, bit for bit
        wa, wb = _weights(a), _weights(b)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), (a, b)
    # The retries were logged: the SDK's in the processes that made them (Ray workers'
    # stdout, in Ray's worker logs).
    assert _sdk_retries(logs) > sdk_before
    record("storage_faults_runs", requests=plan.requests, injected=injected,
           trials=len(got), sdk_retry_lines=_sdk_retries(logs) - sdk_before)
    record("half_upload_train", first_rc=rc, error=errors[0], half_files=sorted(half),
           cut_resets=cut_resets, resumed_from=meta["start_step"],
           failed_run_s=round(cut_s, 1), resumed_run_s=round(resumed_s, 1))
