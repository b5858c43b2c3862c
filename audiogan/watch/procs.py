"""Local servers to watch a sweep with, and a way to end every process they started.

Each server (TensorBoard, optuna-dashboard) and the browser run with a marker in their
environment (`AUDIOGAN_WATCH=<id>`). Children inherit it, so /proc tells exactly which
processes are ours, including ones that left their parent (Chromium's crash handler
double-forks): `stop_marked` ends them by pid, never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

MARKER = "AUDIOGAN_WATCH"


def new_marker() -> str:
    return uuid.uuid4().hex[:12]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Exists and is not a zombie (a zombie holds nothing; its parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_with_env(name: str, value: str) -> list[int]:
    """Live pids (not this one) whose environment has NAME=VALUE: children inherit it."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        if alive(int(entry)):
            found.append(int(entry))
    return found


def marked(marker: str) -> list[int]:
    """Live pids (not this process) whose environment carries AUDIOGAN_WATCH=marker."""
    return processes_with_env(MARKER, marker)


def stop_marked(marker: str, grace_s: float = 5.0) -> list[int]:
    """SIGTERM, then after `grace_s` SIGKILL, every process carrying `marker`; returns the
    pids that were still alive for the SIGKILL (an empty list: all ended in time)."""
    for pid in marked(marker):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = marked(marker)
    for pid in left:
        _signal(pid, signal.SIGKILL)
    return left


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Until `url` answers 200 (RuntimeError after `timeout_s`, or when `proc` exits)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited with {proc.returncode} before {url} "
                               "answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


class Server:
    """A local web server as a child process on 127.0.0.1, marked, with its output in a
    log file. `stop()` ends it and whatever it started."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: str,
                 marker: str, ready_path: str = "/") -> None:
        self.name, self.port, self.marker = name, port, marker
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        env = {**os.environ, MARKER: marker}
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL)
        self.ready_path = ready_path

    def wait_ready(self, timeout_s: float = 120.0) -> "Server":
        wait_http(self.url + self.ready_path, timeout_s, self.proc)
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def tensorboard(logdir: str, log_path: str, marker: str) -> Server:
    """`tensorboard --logdir LOGDIR` on a free loopback port; the Python event reader
    (`--load_fast=false`: no separate data-server process) re-reads every 2 s."""
    port = free_port()
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
            "--port", str(port), "--load_fast=false", "--reload_interval", "2"]
    return Server("tensorboard", argv, port, log_path, marker)


def optuna_dashboard(storage_url: str, log_path: str, marker: str) -> Server:
    """optuna-dashboard on `storage_url` on a free loopback port (its public run_server)."""
    port = free_port()
    code = ("import sys, optuna_dashboard; optuna_dashboard.run_server(sys.argv[1], "
            "host='127.0.0.1', port=int(sys.argv[2]))")
    return Server("optuna-dashboard", [sys.executable, "-c", code, storage_url, str(port)],
                  port, log_path, marker, ready_path="/api/studies")
