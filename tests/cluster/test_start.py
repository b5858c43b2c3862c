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
