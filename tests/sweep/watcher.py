"""Watch the smoke sweep as a user does, while it runs: the browser checks of test_watch.py.

The smoke sweep fixture (conftest.py) runs the sweep twice (SIGINT, then --resume). When
test_watch.py is part of the run and a browser is here, it hands this watcher its runs:

- before the first run: headless Chromium, TensorBoard on the sweep directory, and one
  `audiogan train --workers 2` joining the session's Ray cluster (tests/conftest.py) with
  a step-time floor, so it stays live without taking the cores from the sweep;
- while the resumed run is live (a thread): the sweep's Ray dashboard (Jobs, its Train
  runs), `audiogan status`, optuna-dashboard on the live study, TensorBoard's Time Series,
  Audio and Images, then the session cluster's dashboard (Jobs, Actors, Cluster, Train runs);
- `finish()`: stops the train run, the servers and the browser, and lists any process of
  theirs still alive (all carry one marker in their environment: `audiogan.watch.procs`).

Every check is recorded with its seconds and whether the sweep and the train run were
live when it ended; an exception is recorded as the check's `error`, for the test to show.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from audiogan.watch import pages, procs
from audiogan.watch.browser import Browser

DASHBOARD_LINE = re.compile(r"Ray dashboard: (http://127\.0\.0\.1:\d+)")


class LiveRun:
    """A command as a subprocess with its output collected line by line as it comes."""

    def __init__(self, argv: list[str], cwd: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def live(self) -> bool:
        return self.proc.poll() is None

    def finish(self, timeout_s: float) -> str:
        self.proc.wait(timeout=timeout_s)
        self.reader.join(timeout=30)
        return self.output

    def find(self, pattern: re.Pattern, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = pattern.search(self.output)
            if m:
                return m.group(1)
            if not self.live():
                break
            time.sleep(0.2)
        raise RuntimeError(f"no {pattern.pattern!r} in the output:\n{self.output[-2000:]}")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:300]
    except OSError:
        return ""


def _runs_with(sweep_dir: str, pattern: str) -> list[str]:
    return sorted({os.path.basename(os.path.dirname(p))
                   for p in glob.glob(os.path.join(sweep_dir, "trial_*", pattern))})


def _evaluated(sweep_dir: str, metric: str) -> list[str]:
    out = []
    for path in glob.glob(os.path.join(sweep_dir, "trial_*", "result.json")):
        with open(path) as f:
            if f'"{metric}"' in f.read():
                out.append(os.path.basename(os.path.dirname(path)))
    return sorted(out)


class Watcher:
    def __init__(self, sweep_dir: str, work: str, data: str, repo: str,
                 cluster_dashboard: str, gcs_address: str) -> None:
        self.sweep_dir, self.work, self.repo = sweep_dir, work, repo
        self.cluster = cluster_dashboard
        self.marker = procs.new_marker()
        self.env = {**os.environ, procs.MARKER: self.marker, "PYTHONPATH": repo,
                    "PYTHONUNBUFFERED": "1", "RAY_API_SERVER_ADDRESS": cluster_dashboard}
        self.env.pop("RAY_ADDRESS", None)
        self.seen: dict[str, dict[str, Any]] = {}
        self.t0 = time.monotonic()
        self.browser = Browser()
        self.tb = procs.tensorboard(sweep_dir, os.path.join(work, "tensorboard.log"), self.marker)
        self.od: procs.Server | None = None
        # Live for as long as we watch: a floor of 0.5 s per step keeps it light.
        self.train = LiveRun(
            [sys.executable, "-m", "audiogan", "train", "pianogan-cpu", "--workers", "2",
             "--data", data, "--out", os.path.join(work, "train2"), "--address", gcs_address,
             "--total-steps", "100000", "--set", "model.d=2", "--set", "optim.batch_size=4"],
            cwd=repo, env={**self.env, "AUDIOGAN_FAULT_HOOKS": json.dumps({"step_sleep_s": 0.5})})
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.sweep: LiveRun | None = None

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.stop.is_set():  # finish() gave up waiting: touch nothing it is stopping
            self.seen[name] = {"value": None, "error": "not run: watching was stopped"}
            return None
        t = time.monotonic()
        try:
            value, error = fn(), None
        except Exception as exc:  # noqa: BLE001 -- recorded for the test to show
            value, error = None, f"{type(exc).__name__}: {exc}"[:1500]
        self.seen[name] = {"value": value, "error": error,
                           "seconds": round(time.monotonic() - t, 1),
                           "at_s": round(time.monotonic() - self.t0, 1),
                           "sweep_live": self.sweep is not None and self.sweep.live(),
                           "train_live": self.train.live()}
        return value

    def watch(self, sweep: LiveRun) -> None:
        """Start the checks on the live (resumed) sweep run, in a thread."""
        self.sweep = sweep
        self.thread = threading.Thread(target=self._checks, daemon=True)
        self.thread.start()

    def _checks(self) -> None:
        # The checks that need the sweep still running come first (the resumed run has
        # only a few tiny trials left); TensorBoard and the cluster pages do not.
        b, sweep = self.browser, self.sweep
        url = self.check("sweep_dashboard", lambda: sweep.find(DASHBOARD_LINE, 120))
        if url:
            self.check("sweep_jobs", lambda: pages.ray_jobs(b, url))
            # The sweep's own Ray (and its dashboard) ends with it: on a slow day the
            # TensorBoard checks below outlast the smoke sweep, so this page is read now.
            self.check("sweep_train_runs", lambda: pages.ray_train_runs(b, url))
        self.check("status_live", lambda: subprocess.run(
            [sys.executable, "-m", "audiogan", "status", self.sweep_dir], cwd=self.repo,
            env=self.env, capture_output=True, text=True, timeout=120).stdout)
        if self.stop.is_set():
            return
        self.od = procs.optuna_dashboard(f"sqlite:///{self.sweep_dir}/optuna.db",
                                         os.path.join(self.work, "optuna-dashboard.log"),
                                         self.marker)
        self.check("optuna", lambda: (self.od.wait_ready(),
                                      pages.optuna_study(b, self.od.url, "smoke"))[1])
        expected = {"with_events": _runs_with(self.sweep_dir, "events.out.tfevents*"),
                    "evaluated": _evaluated(self.sweep_dir, "eval/ndb")}
        self.seen["tb_expected"] = {"value": expected}
        self.check("tb_scalars", lambda: (self.tb.wait_ready(), pages.tensorboard_scalars(
            b, self.tb.url, "eval/ndb", expected["with_events"]))[1])
        self.check("tb_audio", lambda: pages.tensorboard_media(b, self.tb.url, "audio"))
        self.check("tb_images", lambda: pages.tensorboard_media(b, self.tb.url, "images"))
        self.check("cluster_train_runs", self._train_run_up)
        self.check("cluster_jobs", lambda: pages.ray_jobs(b, self.cluster))
        self.check("cluster_actors", lambda: pages.ray_actors(b, self.cluster))
        self.check("cluster_nodes", lambda: pages.ray_nodes(b, self.cluster))

    def _train_run_up(self, timeout_s: float = 90.0) -> dict[str, Any]:
        """The session cluster's Train runs, once the 2-worker run is RUNNING there."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = pages.ray_train_runs(self.browser, self.cluster)
            running = [r for r in seen.get("runs", []) if r["name"] == "train2"
                       and r["status"] == "RUNNING"]
            if running or time.monotonic() > deadline or not self.train.live():
                return seen
            time.sleep(2)

    def finish(self, timeout_s: float = 300.0) -> dict[str, Any]:
        """Wait for the checks, stop everything started here; the record of it all."""
        if self.thread is not None:
            self.thread.join(timeout=timeout_s)
            self.stop.set()  # a check still running ends within its own timeout
            self.thread.join(timeout=130)
        t = time.monotonic()
        if self.train.live():
            self.train.proc.send_signal(signal.SIGINT)
        try:
            train_rc = self.train.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.train.proc.kill()
            train_rc = self.train.proc.wait(timeout=30)
        for server in (self.tb, self.od):
            if server is not None:
                server.stop()
        killed_after_quit = self.browser.close()
        time.sleep(1.0)
        left = {pid: _cmdline(pid) for pid in procs.marked(self.marker)}
        procs.stop_marked(self.marker, grace_s=10.0)
        return {"seen": self.seen, "train_rc": train_rc, "train_out": self.train.output[-3000:],
                "browser_killed_after_quit": killed_after_quit,
                "left_behind": left,
                "stop_seconds": round(time.monotonic() - t, 1),
                "watch_seconds": round(time.monotonic() - self.t0, 1)}
