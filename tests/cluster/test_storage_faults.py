"""Object-storage faults, through a fault-injecting proxy in front of the local S3 server
(`s3_faults`): transient errors are retried by the SDK as `audiogan.storage` configures
it, and logged; permanent ones (a read-only bucket, a missing bucket) are one line and
exit 2 before Ray starts; an interrupted checkpoint upload is never resumed from."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import uuid

import numpy as np
import pyarrow.fs as pafs
import pytest
from s3_faults import FAULTS, FaultPlan, fault_proxy
from s3_server import BUCKET, s3_uri

from audiogan import storage
from audiogan.data import shards
from audiogan.train.checkpoint import CONFIG, META, MODEL, checkpoint_name
from tests.fixtures import make_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def quick_s3(monkeypatch):
    """A stalled request is abandoned after 1 s (30 s in production) and retried."""
    monkeypatch.setenv(storage.S3_REQUEST_TIMEOUT_ENV, "1")
    monkeypatch.setenv(storage.S3_MAX_ATTEMPTS_ENV, "10")


def test_retrying_filesystem_keeps_its_retry_bound_through_pickle(monkeypatch):
    monkeypatch.setenv(storage.S3_MAX_ATTEMPTS_ENV, "7")
    fs, inside = storage.resolve("s3://bkt/a/b?endpoint_override=127.0.0.1:9&scheme=http")
    assert inside == "bkt/a/b"
    again = pickle.loads(pickle.dumps(fs))  # how Ray ships it to every worker
    assert isinstance(again, storage.RetryingS3FileSystem)
    assert again._options == fs._options and again._options["max_attempts"] == 7
    assert again == fs


@pytest.mark.parametrize("uri, message", [
    ("s3://bkt/x?nope=1", "unknown S3 URI option 'nope'"),
    ("s3://key:secret@bkt/x", "credentials do not belong in a URI"),
    ("s3:///x", "no bucket"),
])
def test_bad_s3_uris_are_one_line_errors(uri, message):
    from audiogan.errors import UserError

    with pytest.raises(UserError, match=message) as info:
        storage.resolve(uri)
    assert "secret" not in str(info.value)


def test_transient_faults_are_retried_with_identical_results(moto_endpoint, quick_s3):
    # Every 4th request (about 60: 15 faults, every kind at least twice; every 3rd: 3 s more)
    plan = FaultPlan(every=4, faults=FAULTS, stall_s=3.0)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(12, 4, 6)).astype(np.float32)
    blob = rng.bytes(6 * 1024 * 1024)  # a multipart upload: parts are retried one by one
    with fault_proxy(moto_endpoint, plan) as endpoint:
        root = s3_uri(endpoint, f"faults-{uuid.uuid4().hex[:8]}")
        storage.write_bytes_atomic(storage.join(root, "blob.bin"), blob)
        storage.write_json_atomic(storage.join(root, "state.json"), {"trial": [1, 2]})
        fs, inside = storage.resolve(root)
        table = shards.make_table([f"k{i:02d}" for i in range(12)], ["train"] * 12,
                                  [""] * 12, xs)
        import pyarrow.parquet as pq

        storage.makedirs(storage.join(root, shards.SHARDS))
        pq.write_table(table, f"{inside}/{shards.SHARDS}/part-0.parquet", filesystem=fs)
        got_blob = storage.read_bytes(storage.join(root, "blob.bin"))
        got_json = storage.read_json(storage.join(root, "state.json"))
        got_table = pq.read_table(f"{inside}/{shards.SHARDS}/part-0.parquet", filesystem=fs)
    assert got_blob == blob and got_json == {"trial": [1, 2]}
    assert got_table.equals(table)
    assert set(plan.injected) == set(FAULTS), plan.injected  # every kind was met
    # The direct (fault-free) view of the bucket agrees.
    direct = s3_uri(moto_endpoint, root.split(BUCKET + "/", 1)[1].split("?")[0])
    assert storage.read_bytes(storage.join(direct, "blob.bin")) == blob


def test_storage_retries_what_the_sdk_gave_up_on_and_logs_it(monkeypatch, caplog):
    """A response stream broken after its headers reaches `storage` as an OSError (seen
    here once in 5 runs of the test above, on a GET during a stall): retried, logged; a
    permanent error and a local path are not retried."""
    monkeypatch.setattr(storage.time, "sleep", lambda s: None)
    uri = "s3://bkt/x.json?endpoint_override=127.0.0.1:9&scheme=http"
    calls = []

    def flaky() -> bytes:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("AWS Error INTERNAL_FAILURE during GetObject operation: Failed to "
                          "flush response stream (eof: 0, bad: 1)")
        return b"ok"

    with caplog.at_level(logging.WARNING, logger="audiogan.storage"):
        assert storage.retrying("read", uri, flaky) == b"ok"
    assert len(calls) == 3
    assert caplog.text.count("storage: read s3://bkt/x.json failed") == 2, caplog.text
    assert "retry 2 of 9" in caplog.text and "endpoint_override" not in caplog.text

    def denied() -> bytes:
        calls.append(1)
        raise OSError("AWS Error ACCESS_DENIED during PutObject operation")

    calls.clear()
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        storage.retrying("write", uri, denied)
    calls.clear()
    with pytest.raises(OSError):
        storage.retrying("read", "/tmp/local", flaky)
    assert len(calls) == 1  # a local path: one attempt


def test_without_retries_the_same_faults_fail(moto_endpoint, monkeypatch):
    """The retry bound is what makes the test above pass: one attempt fails on a 503."""
    monkeypatch.setenv(storage.S3_MAX_ATTEMPTS_ENV, "1")
    plan = FaultPlan(every=2, faults=("503",), start=1)
    with fault_proxy(moto_endpoint, plan) as endpoint:
        root = s3_uri(endpoint, f"noretry-{uuid.uuid4().hex[:8]}")
        with pytest.raises(OSError):
            storage.write_json_atomic(storage.join(root, "a.json"), [1])


def _cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audiogan", *argv], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO, **env},
                          capture_output=True, text=True, timeout=120)


def test_read_only_or_missing_bucket_is_one_line_and_exit_2_before_ray(moto_endpoint,
                                                                      tmp_path):
    data = make_dataset(tmp_path / "data", "notes", n_train=8)
    smoke = os.path.join(REPO, "sweeps", "pianogan-smoke.yaml")
    plan = FaultPlan(read_only=True)
    with fault_proxy(moto_endpoint, plan) as endpoint:
        read_only = [
            (["train", "pianogan-cpu", "--data", data, "--out", s3_uri(endpoint, "ro/run")],
             "--out", "ACCESS_DENIED"),
            (["sweep", smoke, "--data", data, "--storage", s3_uri(endpoint, "ro")],
             "sweep directory", "ACCESS_DENIED"),
        ]
        results = [(_cli(argv, {storage.S3_MAX_ATTEMPTS_ENV: "2"}), what, why)
                   for argv, what, why in read_only]
    missing = s3_uri(moto_endpoint, "run").replace(f"s3://{BUCKET}/", "s3://no-such-bucket/")
    results.append((_cli(["train", "pianogan-cpu", "--data", data, "--out", missing], {}),
                    "--out", "NO_SUCH_BUCKET"))
    for done, what, why in results:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"audiogan: error: cannot write to {what} ") and \
            why.lower() in lines[0].lower(), lines[0]
        assert "Ray" not in done.stdout + done.stderr  # failed before Ray started
    assert plan.injected.get("denied", 0) >= 2


def _upload_checkpoint(fs: pafs.FileSystem, run: str, step: int, files: tuple[str, ...]
                       ) -> None:
    for name in files:
        with fs.open_output_stream(f"{run}/{checkpoint_name(step)}/{name}") as f:
            f.write(f"{name} of step {step}".encode())


def test_an_interrupted_checkpoint_upload_is_never_resumed_from(moto_endpoint, tmp_path,
                                                                monkeypatch, caplog):
    from audiogan.train.checkpoint import newest_complete

    fs, run = storage.resolve(s3_uri(moto_endpoint, f"ckpt-{uuid.uuid4().hex[:8]}/trial_x"))
    _upload_checkpoint(fs, run, 10, (MODEL, CONFIG, META))
    # Step 20's upload is cut off for good: its meta.json PUT is reset on every attempt.
    monkeypatch.setenv(storage.S3_MAX_ATTEMPTS_ENV, "2")
    local = tmp_path / checkpoint_name(20)
    local.mkdir()
    for name in (MODEL, CONFIG, META):
        (local / name).write_text(f"{name} of step 20")
    plan = FaultPlan(always=(f"{checkpoint_name(20)}/{META}", "reset"))
    with fault_proxy(moto_endpoint, plan) as endpoint:
        proxied, _ = storage.resolve(s3_uri(endpoint, "x"))
        with pytest.raises(OSError):
            pafs.copy_files(str(local), f"{run}/{checkpoint_name(20)}",
                            destination_filesystem=proxied)
    listed = {i.base_name for i in fs.get_file_info(
        pafs.FileSelector(f"{run}/{checkpoint_name(20)}", allow_not_found=True))}
    assert listed < {MODEL, CONFIG, META}  # a half-uploaded checkpoint is on the bucket
    with caplog.at_level(logging.WARNING, logger="audiogan.train.checkpoint"):
        chosen = newest_complete(fs, f"{run}/{checkpoint_name(20)}")
    assert chosen == f"{run}/{checkpoint_name(10)}"
    assert "incomplete" in caplog.text and checkpoint_name(20) in caplog.text
    # Ray recorded step 10, and step 30 reached the bucket before the driver was lost.
    _upload_checkpoint(fs, run, 30, (MODEL, CONFIG, META))
    assert newest_complete(fs, f"{run}/{checkpoint_name(10)}") == \
        f"{run}/{checkpoint_name(30)}"


def test_resume_session_downloads_the_newest_complete_checkpoint(moto_endpoint, tmp_path):
    from ray.train import Checkpoint

    from audiogan.cluster.session import _local_copy

    fs, run = storage.resolve(s3_uri(moto_endpoint, f"sess-{uuid.uuid4().hex[:8]}/trial_y"))
    _upload_checkpoint(fs, run, 10, (MODEL, CONFIG, META))
    _upload_checkpoint(fs, run, 20, (MODEL, CONFIG))  # interrupted: no meta.json
    recorded = Checkpoint(path=f"{run}/{checkpoint_name(20)}", filesystem=fs)
    with _local_copy(recorded) as local:
        assert os.path.basename(local) == checkpoint_name(10)
        assert open(os.path.join(local, META)).read() == f"{META} of step 10"
    assert not os.path.exists(local)  # the download is removed afterwards


def test_the_sdk_logs_each_retry_at_level_warn(moto_endpoint, monkeypatch):
    """AUDIOGAN_S3_LOG_LEVEL=warn starts the AWS SDK so that it prints every retry it makes;
    the default (fatal) keeps it quiet; a level it does not know is a UserError. (The SDK
    takes its level once per process: a process per level.)"""
    from audiogan.errors import UserError

    code = ("import sys; from audiogan import storage; p = storage.join(sys.argv[1], 'a.json');"
            " storage.write_json_atomic(p, [1]); print(storage.read_json(p))")
    runs = {}
    for level in ("warn", ""):
        # Every third request: with every second one, Arrow's own retry of an error inside
        # a 200 answer (CompleteMultipartUpload) kept meeting the fault.
        plan = FaultPlan(every=3, faults=("503",))
        with fault_proxy(moto_endpoint, plan) as endpoint:
            root = s3_uri(endpoint, f"log-{uuid.uuid4().hex[:8]}")
            runs[level] = (subprocess.run(
                [sys.executable, "-c", code, root], cwd=REPO, capture_output=True, text=True,
                timeout=60, env={**os.environ, "PYTHONPATH": REPO,
                                  storage.S3_LOG_LEVEL_ENV: level}), plan.injected.get("503", 0))
    (warn, n), (quiet, m) = runs["warn"], runs[""]
    assert warn.returncode == 0 and warn.stdout.splitlines()[-1] == "[1]", warn.stderr
    assert n >= 2 and 0 < warn.stdout.count("Request failed, now waiting") <= n, warn.stdout
    assert quiet.returncode == 0 and quiet.stdout.strip() == "[1]" and m >= 2, quiet.stdout
    monkeypatch.setenv(storage.S3_LOG_LEVEL_ENV, "loud")
    with pytest.raises(UserError, match="AUDIOGAN_S3_LOG_LEVEL='loud': one of off, fatal"):
        storage.resolve(s3_uri(moto_endpoint, "loud"))
