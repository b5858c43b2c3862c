"""Security defaults: a private local Ray head answers REST calls only with its token and
only on 127.0.0.1; a checkpoint carrying a code-running pickle is refused without running it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import tempfile
import time

import pytest

from cluster_harness import LocalHead, listening_addresses

USER_TOKEN = pathlib.Path.home() / ".ray" / "auth_token"


def _fingerprint(path: pathlib.Path) -> tuple | None:
    return (path.read_bytes(), path.stat().st_mtime_ns) if path.exists() else None


@pytest.fixture(scope="module")
def head():
    before = _fingerprint(USER_TOKEN)
    root = tempfile.mkdtemp(prefix="agsec-", dir="/tmp")
    cluster = LocalHead(root, num_cpus=1)
    started = time.monotonic()
    cluster.start()
    cluster.startup_s = time.monotonic() - started
    try:
        yield cluster
    finally:
        pids = cluster.stop()
        assert pids, "the harness found the cluster's processes"
        assert cluster.processes() == [], "processes left behind"
        shutil.rmtree(root, ignore_errors=True)
        # The user's own Ray token was neither created nor overwritten.
        assert _fingerprint(USER_TOKEN) == before


@pytest.mark.slow  # a private Ray head: ~15-30 s to start on 2 busy cores
def test_rest_calls_need_the_token(head):
    path = "/api/jobs/"
    assert head.get(path, token=None)[0] == 401
    assert head.get(path, token="0" * 64)[0] == 403
    status, body = head.get(path)
    assert status == 200 and json.loads(body) == []


@pytest.mark.slow  # a private Ray head: ~15-30 s to start on 2 busy cores
def test_dashboard_listens_only_on_loopback(head):
    assert listening_addresses(head.dashboard_port) == {"127.0.0.1"}
    if head.node_ip not in ("127.0.0.1", "localhost"):
        with pytest.raises(OSError):
            socket.create_connection((head.node_ip, head.dashboard_port), timeout=2).close()


@pytest.mark.slow  # a private Ray head: ~15-30 s to start on 2 busy cores
def test_job_cli_works_with_the_private_token(head):
    import subprocess

    from cluster_harness import BIN

    out = subprocess.run([os.path.join(BIN, "ray"), "job", "list"], env=head.job_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    bad = {**head.job_env(), "RAY_AUTH_TOKEN_PATH": os.path.join(head.root, "wrong")}
    with open(bad["RAY_AUTH_TOKEN_PATH"], "w") as f:
        f.write("1" * 64)
    out = subprocess.run([os.path.join(BIN, "ray"), "job", "list"], env=bad,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0


class _RunsCode:
    """Pickles to `os.system(cmd)`: what a malicious checkpoint would carry."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_checkpoint_with_code_running_pickle_is_refused(tmp_path):
    checkpoint = pytest.importorskip("audiogan.train.checkpoint")
    torch = pytest.importorskip("torch")
    from audiogan.config import resolve
    from audiogan.errors import UserError

    cfg = resolve("pianogan-cpu")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / checkpoint.CONFIG).write_text(json.dumps(cfg.to_dict()))
    (ckpt / checkpoint.META).write_text(json.dumps({"family": cfg.model.family}))
    witness = tmp_path / "pwned"
    payload = {k: 0 for k in checkpoint.STATE_KEYS}
    payload["generator"] = _RunsCode(f"touch {witness}")
    torch.save(payload, ckpt / checkpoint.MODEL)

    with pytest.raises(UserError, match="refusing"):
        checkpoint.load_checkpoint(str(ckpt))
    assert not witness.exists(), "the pickle's code ran"
    with pytest.raises(UserError):
        checkpoint.load_generator(str(ckpt))
    assert not witness.exists()
