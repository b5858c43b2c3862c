"""Run `audiogan` commands as real processes and find every process they left behind.

Each command gets a private RAY_TMPDIR and a unique marker in its environment
(AUDIOGAN_RELIABILITY_RUN=<id>); every process it starts -- raylet, gcs_server, dashboard,
agents, workers -- inherits the marker, so /proc tells this command's processes apart from
other Ray clusters on the machine. Leftovers are ended by pid, never by name.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from tests.proc_utils import processes_with_env

MARKER = "AUDIOGAN_RELIABILITY_RUN"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def marked(run_id: str) -> dict[int, str]:
    """{pid: cmdline} of live processes carrying this run's marker."""
    return {pid: _cmdline(pid) for pid in processes_with_env(MARKER, run_id)}


def ray_daemons(procs: dict[int, str]) -> dict[int, str]:
    return {p: c for p, c in procs.items() if re.search(r"raylet|gcs_server", c)}


def rss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def descendants(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/*/stat parent links)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    out, frontier = [pid], [pid]
    while frontier:
        kids = [c for c, p in parent.items() if p in frontier]
        out += kids
        frontier = kids
    return out


class Command:
    """One `python -m audiogan ...` with its own marker and RAY_TMPDIR; output collected
    line by line with the time each line arrived."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 python_code: str | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.tmp = tempfile.mkdtemp(prefix="agr-", dir="/tmp")  # short: Ray's socket paths
        full_env = {**os.environ, MARKER: self.id, "RAY_TMPDIR": self.tmp, "TMPDIR": self.tmp,
                    "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": REPO, **(env or {})}
        full_env.pop("RAY_ADDRESS", None)
        cmd = [sys.executable, "-c", python_code, *argv] if python_code else \
            [sys.executable, "-m", "audiogan", *argv]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self.elapsed_s: float | None = None  # start to exit, set by wait()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for(self, predicate, timeout_s: float, poll_s: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.proc.poll() is not None:
                return bool(predicate())
            time.sleep(poll_s)
        return False

    def wait(self, timeout_s: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout_s} s:\n{self.output[-3000:]}")
        self._reader.join(timeout=10)
        self.elapsed_s = time.monotonic() - self.t0
        return rc

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def leftovers(self, grace_s: float = 8.0) -> dict[int, str]:
        """This command's processes still alive `grace_s` after it exited (0 = look now)."""
        deadline = time.monotonic() + grace_s
        left = marked(self.id)
        while left and time.monotonic() < deadline:
            time.sleep(0.25)
            left = marked(self.id)
        return left

    def cleanup(self) -> dict[int, str]:
        """SIGKILL whatever of ours is still alive (by pid); returns what was killed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        left = marked(self.id)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


def record(name: str, **figures) -> None:
    """Measured figures for results/reliability.md: printed, and appended as JSON lines to
    $AUDIOGAN_RELIABILITY_FIGURES when set."""
    print(f"FIGURES {name}: {figures}")
    path = os.environ.get("AUDIOGAN_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"case": name, **figures}, sort_keys=True) + "\n")
