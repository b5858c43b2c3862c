"""The multi-node path on Ray's fake_multinode autoscaler, end to end on one machine.

A private head (no CPUs, token auth, loopback dashboard) with tests/cluster/fake_cluster.yaml
(cluster.yaml's node types; `fake_gpu` stands in for the GPU); a smoke sweep with 2-worker
DDP trials submitted with `ray job submit --working-dir`; the autoscaler launches the
worker nodes; both Train workers run on different autoscaled nodes and import audiogan from
the job's uploaded working dir (a sitecustomize.py planted in that dir records, in every
process of the job, where `audiogan` resolves from); `audiogan best` pulls the checkpoint.
Only this cluster's processes are stopped (env marker, see cluster_harness).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from audiogan.config import LossConfig
from cluster_harness import BIN, LocalHead, fake_cluster_of, node_of, worker_nodes
from s3_server import s3_uri

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
FAKE_HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"
JOB_TIMEOUT_S = 480  # ~3 min on a quiet 2-core machine; far more under heavy load

SITECUSTOMIZE = '''\
# Planted by tests/cluster/test_fake_cluster.py in the job's working dir only: every Python
# process of the job records where `audiogan` resolves from (working_dir is first on
# PYTHONPATH, so this file runs at interpreter start-up).
import importlib.util, json, os
_log = os.environ.get("AUDIOGAN_IMPORT_LOG")
if _log:
    _spec = importlib.util.find_spec("audiogan")
    with open("/proc/self/cmdline", "rb") as _f:
        _argv = [a.decode() for a in _f.read().split(b"\\0") if a]
    with open(os.path.join(_log, f"{os.getpid()}.json"), "w") as _f:
        json.dump({"pid": os.getpid(), "origin": _spec.origin if _spec else None,
                   "job_dir": os.path.dirname(os.path.abspath(__file__)), "argv": _argv}, _f)
'''


def stage_working_dir(dest: pathlib.Path) -> pathlib.Path:
    """What `ray job submit --working-dir .` would upload from a checkout, plus the probe."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "audiogan", "sweeps", "pyproject.toml"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for rel in listed:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return dest


def smoke_spec(dest: pathlib.Path) -> pathlib.Path:
    spec = yaml.safe_load((ROOT / "sweeps" / "pianogan-smoke.yaml").read_text())
    spec.update(workers=2, num_samples=1, max_concurrent_trials=1, baseline=True,
                max_critic_steps=20, grace_critic_steps=10)
    dest.write_text(yaml.safe_dump(spec))
    return dest


@pytest.fixture
def fake_cluster():
    """Scales from zero: every worker node is launched by the autoscaler on demand."""
    with fake_cluster_of() as head:
        yield head


@pytest.fixture
def fake_cluster_with_spare():
    """Three worker nodes from the start: the DDP pair and one spare. The fake provider keeps
    listing a node whose processes ended as still launching, so its autoscaler never
    replaces a lost node the way a cloud provider's terminated instance is replaced; the
    restarted worker group lands on the spare instead."""
    with fake_cluster_of({"gpu.spot": 2, "gpu.ondemand": 1}) as head:
        yield head


def _raylet_port(argv: list[str]) -> int:
    """The node-manager (raylet) port a Ray worker process was started for: one per node."""
    for arg in argv:
        if arg.startswith("--node-manager-port="):
            return int(arg.split("=", 1)[1])
    raise AssertionError(f"not a Ray worker: {argv}")


def _job_status(head: LocalHead, job_id: str) -> dict:
    status, body = head.get(f"/api/jobs/{job_id}")
    assert status == 200, body
    return json.loads(body)


@pytest.mark.slow
def test_sweep_job_scales_out_on_fake_autoscaler(moto_endpoint, fake_cluster, tmp_path):
    """... with the sweep on the local S3 server (as `--storage s3://...` on a cluster): the
    2-worker trial's Train run uploads its checkpoints there, and `best` pulls from it."""
    head = fake_cluster
    root = pathlib.Path(head.root)
    sys.path.insert(0, str(ROOT))
    from audiogan import storage
    from tests.fixtures import make_dataset

    data = make_dataset(root / "data", "notes", n_train=16, n_validation=8, n_test=4)
    wd = stage_working_dir(root / "wd")
    spec = smoke_spec(root / "fake-smoke.yaml")
    imports = root / "imports"
    imports.mkdir()
    sweeps = s3_uri(moto_endpoint, f"scale-{uuid.uuid4().hex[:8]}")
    sweep = storage.join(sweeps, "fake")

    runtime_env = {"env_vars": {"AUDIOGAN_IMPORT_LOG": str(imports)}}
    head_raylet_port = head.ports["--node-manager-port"]
    job_id = f"audiogan-fake-{os.getpid()}-{int(time.time())}"
    t0 = time.monotonic()
    submit = subprocess.run(
        [os.path.join(BIN, "ray"), "job", "submit", "--no-wait", "--submission-id", job_id,
         "--working-dir", str(wd),
         "--runtime-env-json", json.dumps(runtime_env), "--",
         # fake_multinode artefact: all fake nodes share one session dir, and each node's
         # runtime-env agent re-unpacks the working dir in place (rmtree + unpack), which
         # deletes the driver's cwd under it. Real nodes have their own disks; here the
         # driver runs from a stable cwd and finds the package via PYTHONPATH (which Ray
         # sets to the working dir) -- the import records below check exactly that.
         "sh", "-c", f"cd {root} && exec {sys.executable} -m audiogan sweep {spec} "
                     f"--data {data} --storage {shlex.quote(sweeps)} --name fake"],
        env=head.job_env(), capture_output=True, text=True, timeout=120)
    assert submit.returncode == 0, submit.stdout + submit.stderr

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job = _job_status(head, job_id)
        if job["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        assert time.monotonic() < deadline, f"job still {job['status']} after {JOB_TIMEOUT_S}s"
        time.sleep(2)
    head.timings["job_s"] = time.monotonic() - t0
    logs = subprocess.run([os.path.join(BIN, "ray"), "job", "logs", job_id],
                          env=head.job_env(), capture_output=True, text=True, timeout=60).stdout
    (tmp_path / "job.log").write_text(logs)
    assert job["status"] == "SUCCEEDED", f"{job.get('message')}\n{logs[-4000:]}"

    # Every process of the job (driver, trial, Train workers) imported audiogan from the
    # job's uploaded working dir, not from the shared venv's editable install (ROOT).
    records = {r["pid"]: r for r in (json.loads(p.read_text()) for p in imports.glob("*.json"))}
    assert records
    for r in records.values():
        assert r["origin"] and r["origin"].startswith(r["job_dir"] + os.sep), r
        assert not r["origin"].startswith(str(ROOT) + os.sep), r
        assert "_ray_pkg_" in r["job_dir"], r

    # The autoscaler launched worker nodes, and the 2-worker DDP trial ran on two of them:
    # each Train worker process belongs to a different raylet, neither the head's.
    assert "Adding" in logs and "gpu." in logs, "no autoscaler launch in the job log"
    worker_pids = {int(p) for p in re.findall(r"RayTrainWorker pid=(\d+)", logs)}
    assert len(worker_pids) == 2, worker_pids
    raylets = set()
    for pid in worker_pids:
        assert pid in records, f"Train worker {pid} left no import record"
        raylets.add(_raylet_port(records[pid]["argv"]))
    assert len(raylets) == 2 and head_raylet_port not in raylets, (raylets, head_raylet_port)

    # Train inside Tune: Tune holds no checkpoint of a multi-worker trial; the Train run's
    # path came in its metrics, under the sweep's train/ directory.
    from audiogan.sweep.results import load_trials

    (trial,) = load_trials(sweep, "eval/ndb", "min")
    assert trial.status == "TERMINATED" and trial.best_value is not None
    assert "checkpoint_path" in trial.history
    from audiogan.train.checkpoint import META

    _, inside = storage.resolve(sweep)  # the Train run's path is inside the bucket's filesystem
    assert trial.checkpoint and trial.checkpoint.startswith(inside + "/train/"), trial.checkpoint
    assert storage.exists(storage.join(sweep, trial.checkpoint[len(inside) + 1:], META))

    # `audiogan best` pulls the best checkpoint out of the sweep directory.
    out = root / "best"
    best = subprocess.run([sys.executable, "-m", "audiogan", "best", sweep,
                           "--out", str(out), "--page-seeds", "0"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
    assert best.returncode == 0, best.stdout + best.stderr
    from audiogan.train.checkpoint import load_checkpoint

    loaded = load_checkpoint(str(out / "checkpoint"))
    assert loaded.cfg.compute.workers == 2
    # ... and `audiogan sample` uses it locally (README "Scale out", step 8).
    sample = subprocess.run([sys.executable, "-m", "audiogan", "sample", str(out / "checkpoint"),
                             "--out", str(root / "samples"), "--seeds", "0-1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "RAY_ADDRESS": ""})
    assert sample.returncode == 0, sample.stdout + sample.stderr
    assert any((root / "samples").rglob("*.mid"))
    print(f"fake cluster timings: {head.timings}")


def _live_train_workers(head: LocalHead) -> list[int]:
    found = []
    for pid in head.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"RayTrainWorker" in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def _latest_committed(train_root: pathlib.Path) -> str | None:
    for snap in train_root.glob("*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snap.read_text()).get("latest_checkpoint_result") or {}
        except ValueError:  # being rewritten right now
            continue
        if latest.get("checkpoint_dir_name"):
            return latest["checkpoint_dir_name"]
    return None


NODE_LOSS_EVAL_CRITIC_STEPS = 50  # = the checkpoint interval, in critic steps
NODE_LOSS_TOTAL_STEPS = 60
BASELINE_N_CRITIC = LossConfig().n_critic  # the baseline trial: WaveGAN's default, 5
STEP_LINE = re.compile(r"\bstep (\d+)/(\d+)")
RESUME_LINE = re.compile(r"resuming from (\S+) at step (\d+)")


@pytest.mark.slow
def test_worker_node_lost_mid_trial_is_retried_from_its_checkpoint(fake_cluster_with_spare, tmp_path):
    """End every process of one fake GPU node while its 2-worker DDP trial trains: Ray Train
    restarts the worker group (on the nodes left) from the trial's last committed
    checkpoint, losing at most one checkpoint interval; the trial and the sweep complete."""
    head = fake_cluster_with_spare
    root = pathlib.Path(head.root)
    sys.path.insert(0, str(ROOT))
    from tests.fixtures import make_dataset
    from tests.reliability.procs import record

    data = make_dataset(root / "data-nl", "notes", n_train=32, n_validation=8, n_test=4)
    wd = stage_working_dir(root / "wd-nl")
    spec_path = root / "node-loss.yaml"
    spec = yaml.safe_load((ROOT / "sweeps" / "pianogan-smoke.yaml").read_text())
    # The baseline trial (n_critic 5): 60 steps, a checkpoint every 10, a report every 2
    # (each report of a 2-worker trial costs about a second here: reports set the pace).
    spec.update(workers=2, num_samples=1, max_concurrent_trials=1, baseline=True,
                max_critic_steps=NODE_LOSS_TOTAL_STEPS * BASELINE_N_CRITIC,
                grace_critic_steps=NODE_LOSS_EVAL_CRITIC_STEPS)
    spec["overrides"].update({"model.d": 4, "optim.batch_size": 8, "train.report_every": 2})
    spec_path.write_text(yaml.safe_dump(spec))
    sweeps = root / "sweeps-nl"
    job_id = f"audiogan-nodeloss-{os.getpid()}-{int(time.time())}"
    t0 = time.monotonic()
    # Every step takes >= 0.1 s however quiet the machine: the kill lands mid-run.
    # The code ships as a `local://` working dir: the fake nodes share this machine's session
    # dir, and each node's runtime-env agent deletes and re-unpacks an uploaded package when
    # it first sets the job's env up (`overwrite=True`), so a node joining mid-run deleted
    # the driver's package under it (ModuleNotFoundError on a lazy import). Nodes with their
    # own disks never share that dir; shipping code by upload is the scale-out test's subject.
    runtime_env = {"working_dir": f"local://{wd}",
                   "env_vars": {"AUDIOGAN_FAULT_HOOKS": json.dumps({"step_sleep_s": 0.1})}}
    submit = subprocess.run(
        [os.path.join(BIN, "ray"), "job", "submit", "--no-wait", "--submission-id", job_id,
         "--runtime-env-json", json.dumps(runtime_env), "--",
         "sh", "-c", f"cd {root} && exec {sys.executable} -m audiogan sweep {spec_path} "
                     f"--data {data} --storage {sweeps} --name nl"],
        env=head.job_env(), capture_output=True, text=True, timeout=120)
    assert submit.returncode == 0, submit.stdout + submit.stderr

    def job_logs() -> str:
        status, body = head.get(f"/api/jobs/{job_id}/logs")
        return json.loads(body).get("logs", "") if status == 200 else ""

    # Wait for a committed checkpoint and a step past it, with both workers alive.
    train_root = sweeps / "nl" / "train"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    steps_per_interval = NODE_LOSS_EVAL_CRITIC_STEPS // BASELINE_N_CRITIC
    committed, workers = None, []
    while True:
        assert time.monotonic() < deadline, (f"not ready to kill: checkpoint {committed}, "
                                             f"workers {workers}, nodes {worker_nodes(head)}\n"
                                             f"{job_logs()[-4000:]}")
        job = _job_status(head, job_id)
        assert job["status"] not in ("SUCCEEDED", "FAILED", "STOPPED"), \
            f"job ended ({job['status']}) before the kill:\n{job_logs()[-4000:]}"
        committed = _latest_committed(train_root)
        steps = [int(m.group(1)) for m in STEP_LINE.finditer(job_logs())]
        workers = _live_train_workers(head)
        if committed and steps and max(steps) > steps_per_interval and len(workers) == 2 \
                and len(worker_nodes(head)) == 3:
            break
        time.sleep(0.3)
    nodes = {pid: node_of(pid) for pid in workers}
    assert all(nodes.values()) and len(set(nodes.values())) == 2, nodes
    victim_node = nodes[max(workers)]
    node_pids = [p for p in head.processes() if node_of(p) == victim_node]
    last_step_before = max(steps)
    for pid in node_pids:  # the node's raylet, agents and workers: the machine is gone
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    t_kill = time.monotonic()

    while (job := _job_status(head, job_id))["status"] not in ("SUCCEEDED", "FAILED", "STOPPED"):
        assert time.monotonic() < deadline + JOB_TIMEOUT_S, \
            f"job still {job['status']}:\n{job_logs()[-4000:]}"
        time.sleep(2)
    seconds_after_kill = time.monotonic() - t_kill
    logs = job_logs()
    (tmp_path / "job.log").write_text(logs)
    assert job["status"] == "SUCCEEDED", f"{job.get('message')}\n{logs[-4000:]}"
    resumed = [m for m in RESUME_LINE.finditer(logs)]
    assert resumed, f"no resume from a checkpoint in the job log:\n{logs[-4000:]}"
    resume_step = int(resumed[-1].group(2))
    assert 0 < resume_step <= last_step_before
    assert last_step_before - resume_step <= steps_per_interval + 2 * 5  # + Train's commit lag
    board = sweeps / "nl" / "leaderboard.csv"
    import pandas as pd

    rows = pd.read_csv(board)
    assert len(rows) == 1 and rows["status"].iloc[0] == "TERMINATED", rows.to_string()
    from audiogan.train.checkpoint import checkpoint_name, load_checkpoint

    (final_dir,) = train_root.glob(f"*/{checkpoint_name(NODE_LOSS_TOTAL_STEPS)}")
    final = load_checkpoint(str(final_dir))
    assert final.meta["step"] == NODE_LOSS_TOTAL_STEPS, final.meta
    assert final.meta["start_step"] == resume_step, final.meta
    # Which layer retried: Train restarts its worker group when a worker's node goes; when
    # the node also held the trial's own actor, Tune retries the trial (error.txt), and the
    # new TorchTrainer resumes the same Train run from its latest checkpoint.
    tune_retried = any((sweeps / "nl").glob("trial_*/error.txt"))
    record("worker_node_lost", node_processes_killed=len(node_pids),
           last_step_before_kill=last_step_before, resumed_from_step=resume_step,
           steps_redone=last_step_before - resume_step, checkpoint_interval_steps=steps_per_interval,
           retried_by="Tune (trial actor on the lost node)" if tune_retried else "Ray Train",
           seconds_kill_to_job_end=round(seconds_after_kill, 1),
           job_seconds=round(time.monotonic() - t0, 1))
