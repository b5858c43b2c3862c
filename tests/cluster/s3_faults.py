"""A fault-injecting HTTP proxy in front of the local moto S3 server (tests only).

Every request is forwarded to moto unless the plan says otherwise. The plan injects, by
request number, the faults object storage really shows:
  "503"    a 503 SlowDown (S3's throttling answer), nothing forwarded
  "500"    a 500 InternalError, nothing forwarded
  "reset"  the connection is reset (RST) after half of the request body was read
  "stall"  no answer for `stall_s` seconds, then the connection is closed
  "cut"    (a GET) the status, the headers and half of the body, then a reset; when its
           turn comes on another request, the next GET is cut instead
`read_only` answers every write (PUT, POST, DELETE) with S3's 403 AccessDenied, as a
bucket whose policy denies the caller's writes would; `always` = (key suffix, fault)
injects that fault into every write of a matching key (an upload that never completes);
`one_file_in` = (directory name, fault) lets the writes of the first key written under that
directory through and faults every write of any other key there: a directory upload cut off
after one file, whatever order the uploader takes the files in.

Faults are spaced (`every` >= 2): a retried request is the next one and goes through, so a
client that retries completes; one that does not fails.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import struct
import threading
import time
from typing import Iterator

import contextlib

FAULTS = ("503", "reset", "500", "stall", "cut")
WRITES = ("PUT", "POST", "DELETE")


def _s3_error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>audiogan-test</RequestId></Error>").encode()


class FaultPlan:
    """Which request gets which fault: every `every`-th request (counting from `start`),
    cycling through `faults`; `read_only` denies writes. Counts what it injected."""

    def __init__(self, every: int = 0, faults: tuple[str, ...] = FAULTS, start: int = 1,
                 stall_s: float = 8.0, read_only: bool = False,
                 always: tuple[str, str] | None = None,
                 one_file_in: tuple[str, str] | None = None) -> None:
        if every == 1:
            raise ValueError("every must be 0 (no faults) or >= 2: a retry must get through")
        self.every, self.faults, self.start = every, faults, start
        self.stall_s, self.read_only, self.always = stall_s, read_only, always
        self.one_file_in = one_file_in
        self.first_key_in: str | None = None
        self.cut_pending = False  # a "cut" whose turn came on a request with no body back
        self.requests = 0
        self.injected: dict[str, int] = {}
        self.lock = threading.Lock()

    def next(self, method: str, path: str) -> str | None:
        with self.lock:
            self.requests += 1
            n = self.requests
            key = path.split("?", 1)[0]
            if self.read_only and method in WRITES:
                fault = "denied"
            elif self.always and method in WRITES and key.endswith(self.always[0]):
                fault = self.always[1]
            elif self.one_file_in and method in WRITES and f"/{self.one_file_in[0]}/" in key \
                    and not key.endswith("/"):  # a directory marker is no file
                self.first_key_in = self.first_key_in or key
                if key == self.first_key_in:
                    return None
                fault = self.one_file_in[1]
            elif self.every and n >= self.start and (n - self.start) % self.every == 0:
                fault = self.faults[((n - self.start) // self.every) % len(self.faults)]
                if fault == "cut" and method != "GET":
                    # Only a body coming back can be cut: the next GET's is (the order of
                    # GETs and writes varies from run to run).
                    self.cut_pending = True
                    return None
            elif self.cut_pending and method == "GET":
                self.cut_pending = False
                fault = "cut"
            else:
                return None
            self.injected[fault] = self.injected.get(fault, 0) + 1
            return fault


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self, limit: int | None = None) -> bytes:
        """The request body (de-chunked; a chunked body's trailers become headers)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        line = self.rfile.readline().decode("latin-1").strip()
                        if not line:
                            return out
                        key, _, value = line.partition(":")
                        self.trailers[key.strip()] = value.strip()
                out += self.rfile.read(size)
                self.rfile.readline()
                if limit is not None and len(out) >= limit:
                    return out
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(length, limit))

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                length: str | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # A HEAD answer carries the object's length and no body.
        self.send_header("Content-Length", length or str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, what a dropped connection looks like to the client.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _handle(self) -> None:
        self.trailers: dict[str, str] = {}
        fault = self.server.plan.next(self.command, self.path)
        if fault == "reset":
            length = int(self.headers.get("Content-Length") or 0)
            self._body(limit=length // 2)
            self._reset()
            return
        if fault == "stall":
            self._body()
            time.sleep(self.server.plan.stall_s)
            self._reset()
            return
        body = self._body()
        if fault in ("503", "500", "denied"):
            status, code = {"503": (503, "SlowDown"), "500": (500, "InternalError"),
                            "denied": (403, "AccessDenied")}[fault]
            self._answer(status, _s3_error(code, f"injected by the test proxy ({fault})"),
                         {"Content-Type": "application/xml"})
            return
        conn = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("transfer-encoding", "content-length",
                                            "x-amz-trailer")}
            headers.update(self.trailers)
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            keep = {k: v for k, v in resp.getheaders()
                    if k.lower() not in ("transfer-encoding", "content-length", "connection")}
            if fault == "cut" and len(data) > 1:
                self.send_response(resp.status)
                for k, v in keep.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                self._reset()
                return
            self._answer(resp.status, data, keep, length=resp.getheader("Content-Length")
                         if self.command == "HEAD" else None)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, plan: FaultPlan) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.plan = upstream, plan


@contextlib.contextmanager
def fault_proxy(upstream: str, plan: FaultPlan) -> Iterator[str]:
    """A proxy for `upstream` ("127.0.0.1:PORT") on a free loopback port, following `plan`;
    yields its "127.0.0.1:PORT" endpoint. The port is bound before it is handed out."""
    server = _Server(upstream, plan)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
