"""`audiogan data download` against a local HTTP server serving archives built here."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from audiogan.cli import main
from audiogan.data import download as dl
from audiogan.errors import UserError


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_bytes(members: dict[str, bytes], link: tuple[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type = tarfile.SYMTYPE
            info.linkname = link[1]
            tf.addfile(info)
    return buf.getvalue()


# Incompressible payload (stored zip) so a truncated transfer is a real fraction of it.
PAYLOAD = {f"maestro-v3.0.0/2004/piece{i}.midi": os.urandom(40_000) for i in range(4)}
PAYLOAD["maestro-v3.0.0/maestro-v3.0.0.csv"] = b"canonical_composer,split\n"
GOOD_ZIP = _zip_bytes(PAYLOAD)
GOOD_SHA = hashlib.sha256(GOOD_ZIP).hexdigest()


class Server:
    """Threaded local server; per-test behaviour: Range support, early close, body."""

    def __init__(self) -> None:
        self.body = GOOD_ZIP
        self.honour_range = True
        self.truncate_next = 0  # this many responses close after half their body
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_GET(self):
                outer.requests.append({"path": self.path, "range": self.headers.get("Range")})
                body, start = outer.body, 0
                rng = self.headers.get("Range")
                if rng and outer.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.send_header("ETag", '"v1"')
                self.end_headers()
                if outer.truncate_next > 0:
                    outer.truncate_next -= 1
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/maestro-v3.0.0-midi.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _get(server, out, **kw):
    kw.setdefault("expected_sha256", GOOD_SHA)
    kw.setdefault("expected_size", None)
    kw.setdefault("attempts", 1)
    return dl.download("maestro", str(out), url=server.url, timeout=5, show_progress=False, **kw)


def test_good_archive_unpacks_and_records_sha(server, tmp_path):
    m = _get(server, tmp_path)
    for name, data in PAYLOAD.items():
        assert (tmp_path / name).read_bytes() == data
    assert m["sha256"] == GOOD_SHA and m["bytes"] == len(GOOD_ZIP)
    assert m["top_level"] == ["maestro-v3.0.0"]
    assert not (tmp_path / ".partial").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # A second run finds the manifest and does not fetch again.
    n = len(server.requests)
    assert _get(server, tmp_path)["sha256"] == GOOD_SHA
    assert len(server.requests) == n


def test_unpinned_archive_verified_by_integrity(server, tmp_path):
    m = _get(server, tmp_path, expected_sha256=None)
    assert m["verified"] == "size + archive integrity" and m["sha256"] == GOOD_SHA


def test_wrong_hash_and_wrong_size_refused_and_discarded(server, tmp_path):
    with pytest.raises(UserError, match="SHA-256 .* expected 0{64}"):
        _get(server, tmp_path, expected_sha256="0" * 64)
    assert not (tmp_path / "maestro-v3.0.0").exists()
    assert not (tmp_path / ".partial" / "maestro-v3.0.0-midi.zip").exists()
    with pytest.raises(UserError, match=f"size {len(GOOD_ZIP)} bytes, expected 123"):
        _get(server, tmp_path, expected_size=123)
    assert not (tmp_path / "maestro-v3.0.0").exists()


def test_corrupt_archive_refused(server, tmp_path):
    bad = bytearray(GOOD_ZIP)
    bad[200:260] = b"\0" * 60  # inside the first member's data -> CRC mismatch
    server.body = bytes(bad)
    with pytest.raises(UserError, match="CRC|not a valid zip"):
        _get(server, tmp_path, expected_sha256=None)
    assert not (tmp_path / "maestro-v3.0.0").exists()


def test_truncated_transfer_errors_then_resumes(server, tmp_path):
    server.truncate_next = 1
    with pytest.raises(UserError, match="run the same command again to resume"):
        _get(server, tmp_path)
    part = tmp_path / ".partial" / "maestro-v3.0.0-midi.zip"
    assert 0 < part.stat().st_size < len(GOOD_ZIP)
    assert not (tmp_path / "maestro-v3.0.0").exists()
    m = _get(server, tmp_path)
    assert m["sha256"] == GOOD_SHA
    assert server.requests[-1]["range"] == f"bytes={len(GOOD_ZIP) // 2}-"
    assert (tmp_path / "maestro-v3.0.0" / "2004" / "piece0.midi").read_bytes() == \
        PAYLOAD["maestro-v3.0.0/2004/piece0.midi"]


def test_truncated_transfer_resumed_within_one_run(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl.time, "sleep", lambda s: None)
    server.truncate_next = 2
    assert _get(server, tmp_path, attempts=3)["sha256"] == GOOD_SHA
    assert [r["range"] is not None for r in server.requests] == [False, True, True]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.truncate_next = 1
    with pytest.raises(UserError, match="resume"):
        _get(server, tmp_path)
    server.honour_range = False
    m = _get(server, tmp_path)
    assert m["sha256"] == GOOD_SHA and m["bytes"] == len(GOOD_ZIP)
    assert server.requests[-1]["range"] is not None  # asked, got 200, rewrote from the start


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_path_traversal_member_refused(server, tmp_path, member):
    server.body = _zip_bytes({"ok/file.txt": b"x", member: b"evil"})
    out = tmp_path / "out"
    with pytest.raises(UserError, match="refusing to unpack"):
        _get(server, out, expected_sha256=None)
    assert not (out / "ok").exists() and not (tmp_path / "evil.txt").exists()


def test_tar_link_member_refused(server, tmp_path):
    server.body = _tar_bytes({"sc09/train/a.wav": b"RIFF"}, link=("sc09/train/b.wav", "/etc/passwd"))
    with pytest.raises(UserError, match="is a link; refusing"):
        dl.download("sc09", str(tmp_path), url=server.url, timeout=5, show_progress=False,
                    attempts=1)
    assert not (tmp_path / "sc09").exists()


def test_good_tar_unpacks(server, tmp_path):
    members = {"sc09/train/Zero_abcd1234_nohash_0.wav": b"RIFF0", "sc09/test/One_x_nohash_1.wav": b"R1"}
    server.body = _tar_bytes(members)
    m = dl.download("sc09", str(tmp_path), url=server.url, timeout=5, show_progress=False)
    assert m["verified"] == "size + archive integrity" and m["top_level"] == ["sc09"]
    for name, data in members.items():
        assert (tmp_path / name).read_bytes() == data


def test_unreachable_port_fails_fast_with_one_line(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.monotonic()
    rc = main(["data", "download", "maestro", "--out", str(tmp_path / "raw"),
               "--url", f"http://127.0.0.1:{port}/x.zip", "--timeout", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and time.monotonic() - t < 5
    assert err.count("\n") == 1 and err.startswith("audiogan: error: cannot reach 127.0.0.1")
    assert "Traceback" not in err
    assert not (tmp_path / "raw" / ".partial").exists()


def test_pins_for_official_sources():
    assert dl.SOURCES["maestro"].sha256 is not None and dl.SOURCES["maestro"].size == 58416533
    assert all(u.startswith("http") for s in dl.SOURCES.values() for u in s.urls)
