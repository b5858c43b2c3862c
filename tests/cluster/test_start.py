"""The embedded Ray's dashboard port is chosen before Ray starts and exported, so State API
calls inside the cluster (Train's placement-group cleaner) reach this cluster only."""

import os
import socket

from audiogan.cluster import start as raylocal


def test_pinned_port_is_exported_and_skips_a_taken_default(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(raylocal, "DEFAULT_DASHBOARD_PORT", taken)
        port = raylocal.pin_dashboard_port()
    assert port not in (0, taken)
    assert os.environ["RAY_API_SERVER_ADDRESS"] == f"http://127.0.0.1:{port}"
    with socket.socket() as s:  # free right now, on loopback
        s.bind(("127.0.0.1", port))


def test_runs_starting_at_once_get_different_ports(monkeypatch):
    """Two starts at the same moment: the second chooses its port only after the first
    one's "Ray" (here a socket bound inside the lock, as ray.init's dashboard is) holds it."""
    import threading
    import time

    # pin_dashboard_port exports the port: restore the session Ray's own afterwards (left
    # pointing here, it sent the browser test to a closed port once the session Ray had
    # started before this test).
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with socket.socket() as probe:  # a default port that is free now
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setattr(raylocal, "DEFAULT_DASHBOARD_PORT", free)
    ports: dict[str, int] = {}
    first_inside = threading.Event()
    first_done = threading.Event()
    dashboards: list[socket.socket] = []

    def start(name: str) -> None:
        with raylocal.dashboard_port_lock():
            if name == "first":
                first_inside.set()
            else:
                assert first_done.is_set(), "second start chose a port inside the first's"
            ports[name] = raylocal.pin_dashboard_port()
            dashboard = socket.socket()
            dashboard.bind(("127.0.0.1", ports[name]))
            dashboards.append(dashboard)
            if name == "first":
                time.sleep(0.3)  # the window in which the second used to pick the same port
                first_done.set()

    first = threading.Thread(target=start, args=("first",))
    first.start()
    assert first_inside.wait(5)
    second_errors: list[BaseException] = []

    def run_second() -> None:
        try:
            start("second")
        except BaseException as exc:  # reported below, in the test's thread
            second_errors.append(exc)

    second = threading.Thread(target=run_second)
    second.start()
    first.join(5)
    second.join(5)
    for s in dashboards:
        s.close()
    assert not second_errors
    assert ports["first"] == free and ports["second"] not in (0, free)
