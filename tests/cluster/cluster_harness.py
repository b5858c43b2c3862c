"""Start and stop one private Ray head (optionally fake_multinode) without touching others.

`ray stop` would kill every Ray process on the machine (other tests, other users). Instead
every process of this cluster inherits a unique marker in its environment
(AUDIOGAN_TEST_CLUSTER=<id>): the `ray start` children, the autoscaler, fake worker nodes it
launches, their workers and job drivers. `stop()` signals exactly those processes.
Token auth uses a test-private token file (RAY_AUTH_TOKEN_PATH), never ~/.ray/auth_token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable, Iterator

import yaml

from tests.proc_utils import processes_with_env

MARKER = "AUDIOGAN_TEST_CLUSTER"
BIN = os.path.dirname(sys.executable)
HERE = pathlib.Path(__file__).resolve().parent
log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def marked_processes(marker_value: str) -> list[int]:
    """Pids whose environment carries this cluster's marker (read from /proc, Linux)."""
    return processes_with_env(MARKER, marker_value)


def listening_addresses(port: int) -> set[str]:
    """IPv4/IPv6 addresses with a TCP socket in LISTEN state on `port` (/proc/net/tcp*)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(address)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


class LocalHead:
    """A `ray start --head` on free ports, loopback dashboard, token auth, its own temp dir."""

    def __init__(self, root: str, num_cpus: int = 1, resources: dict[str, float] | None = None,
                 autoscaling_config: str | None = None, extra_env: dict[str, str] | None = None):
        self.root = root
        self.marker = uuid.uuid4().hex
        self.temp_dir = os.path.join(root, "r")
        self.token_path = os.path.join(root, "token")
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.num_cpus = num_cpus
        self.resources = resources or {}
        self.autoscaling_config = autoscaling_config
        self.token = secrets.token_hex(32)
        os.makedirs(self.temp_dir, exist_ok=True)
        with open(self.token_path, "w") as f:
            f.write(self.token)
        self.env = {
            **os.environ,
            MARKER: self.marker,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": self.token_path,
            "RAY_TMPDIR": self.temp_dir,
            "TMPDIR": self.temp_dir,
            "RAY_USAGE_STATS_ENABLED": "0",
            # A busy 2-core machine can take over a minute to register a raylet.
            "RAY_raylet_start_wait_time_s": "180",
            # State API calls inside the cluster (Train's state actor, its placement-group
            # cleaner) auto-detect "the" local Ray and fail when another one runs here.
            "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{self.dashboard_port}",
            **(extra_env or {}),
        }
        self.env.pop("RAY_ADDRESS", None)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def node_ip(self) -> str:
        from ray._private.services import get_node_ip_address

        return get_node_ip_address()

    @property
    def gcs_address(self) -> str:
        return f"{self.node_ip}:{self.gcs_port}"

    def start(self, timeout_s: float = 90) -> None:
        # Every port explicit: Ray's defaults (e.g. agent 52365) may be taken by others.
        self.ports = ports = {"--node-manager-port": free_port(), "--object-manager-port": free_port(),
                 "--dashboard-agent-listen-port": free_port(),
                 "--dashboard-agent-grpc-port": free_port(),
                 "--metrics-export-port": free_port(), "--runtime-env-agent-port": free_port(),
                 "--ray-client-server-port": free_port()}
        cmd = [os.path.join(BIN, "ray"), "start", "--head", f"--port={self.gcs_port}",
               "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
               f"--temp-dir={self.temp_dir}", f"--num-cpus={self.num_cpus}",
               "--disable-usage-stats"]
        cmd += [f"{k}={v}" for k, v in ports.items()]
        if self.resources:
            cmd.append(f"--resources={json.dumps(self.resources)}")
        if self.autoscaling_config:
            cmd.append(f"--autoscaling-config={self.autoscaling_config}")
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout_s)
        if out.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        deadline = time.monotonic() + timeout_s
        while self.get("/api/version")[0] != 200:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dashboard did not come up")
            time.sleep(0.5)

    def get(self, path: str, token: str | None = "default") -> tuple[int, str]:
        """GET on the dashboard; token=None sends no Authorization header."""
        req = urllib.request.Request(self.dashboard_url + path)
        if token is not None:
            req.add_header("Authorization", f"Bearer {self.token if token == 'default' else token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError as exc:
            return 0, str(exc)

    def processes(self) -> list[int]:
        return marked_processes(self.marker)

    def stop(self, grace_s: float = 5) -> list[int]:
        """SIGTERM this cluster's processes, SIGKILL what is left; returns the pids signalled."""
        signalled: list[int] = []
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5), (signal.SIGKILL, 5)):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            signalled += [p for p in pids if p not in signalled]
            deadline = time.monotonic() + wait_s
            # Processes spawned meanwhile (a worker starting up) carry the marker too.
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)
        return signalled

    def job_env(self) -> dict[str, Any]:
        """Environment for `ray job ...` CLI calls against this cluster."""
        return {**self.env, "RAY_ADDRESS": self.dashboard_url}


def env_of(pid: int, name: str) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    except OSError:
        return None
    value = env.get(name.encode())
    return value.decode() if value else None


def node_of(pid: int) -> str | None:
    """The fake node a process belongs to: the provider gives each node's raylet (and so
    every process it starts) its own RAY_OVERRIDE_NODE_ID_FOR_TESTING."""
    return env_of(pid, "RAY_OVERRIDE_NODE_ID_FOR_TESTING")


def worker_nodes(head: LocalHead) -> set[str]:
    """Fake worker nodes whose raylet is alive."""
    nodes = set()
    for pid in head.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"raylet/raylet" not in f.read():
                    continue
        except OSError:
            continue
        if env_of(pid, "RAY_NODE_TYPE_NAME"):
            nodes.add(node_of(pid))
    return nodes


@contextlib.contextmanager
def fake_cluster_of(min_workers: dict[str, int] | None = None,
                    env_for: Callable[[pathlib.Path], dict[str, str]] | None = None,
                    stop_grace_s: float = 5) -> Iterator[LocalHead]:
    """A private head (no CPUs) with Ray's fake_multinode autoscaler on fake_cluster.yaml,
    `min_workers` nodes per type from the start; everything under one temp root, deleted
    with the cluster (the head's processes stopped first, only this cluster's).
    `env_for(root)`: more environment for the head and every node it launches (a HOME
    under the root, say: it goes with the cluster). `stop_grace_s`: SIGTERM to SIGKILL at
    teardown."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="agfc-", dir="/tmp"))
    head = LocalHead(str(root), num_cpus=0,
                     extra_env={"RAY_FAKE_CLUSTER": "1", **(env_for(root) if env_for else {})})
    config = yaml.safe_load((HERE / "fake_cluster.yaml").read_text())
    config["provider"]["gcs_address"] = head.gcs_address
    for node_type, n in (min_workers or {}).items():
        config["available_node_types"][node_type]["min_workers"] = n
    config["max_workers"] = max(config["max_workers"], sum((min_workers or {}).values()))
    (root / "fake.yaml").write_text(yaml.safe_dump(config))
    head.autoscaling_config = str(root / "fake.yaml")
    head.timings = {}
    try:
        t0 = time.monotonic()
        head.start()
        head.timings["head_up_s"] = time.monotonic() - t0
        yield head
    finally:
        t0 = time.monotonic()
        pids = head.stop(grace_s=stop_grace_s)
        head.timings["teardown_s"] = time.monotonic() - t0
        print(f"fake cluster: stopped {len(pids)} processes; timings {head.timings}")
        left = head.processes()
        shutil.rmtree(root, ignore_errors=True)
        assert left == [], f"processes left behind: {left}"
