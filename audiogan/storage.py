"""Local paths and `pyarrow.fs` URIs (file://, s3://, gs://) behind one small API.

Writes are atomic: local files go through a temp file and `os.replace`; object stores
publish an object only when its upload completes.

Object storage: s3:// URIs open `audiogan.s3.RetryingS3FileSystem` (retries, timeouts,
the SDK's log level: see that module). The SDK does not retry a response whose body is
cut off after its headers; `retrying` does, for this module's whole-object reads and
writes and for shard reads, and logs every retry as a warning. Permanent errors (access
denied, a missing bucket) are not retried; `check_writable` makes them one line before
Ray starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import tempfile
import time
import uuid
from typing import Any, Callable, Iterator, TypeVar

import pyarrow.fs as pafs

from audiogan import s3
from audiogan.errors import UserError
# Names older pickles and callers use (a Tune experiment state pickles the filesystem).
from audiogan.s3 import (S3_LOG_LEVEL_ENV, S3_MAX_ATTEMPTS_ENV,  # noqa: F401
                         S3_REQUEST_TIMEOUT_ENV, RetryingS3FileSystem, _rebuild_s3)

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI; s3:// gets the retrying
    filesystem (module docstring)."""
    path = str(path)
    if is_uri(path):
        if path.startswith("s3://"):
            return s3.resolve(path)
        try:
            return pafs.FileSystem.from_uri(path)
        except Exception as exc:  # pyarrow raises several types for bad URIs
            raise UserError(f"cannot open storage URI '{path}': {exc}") from exc
    return pafs.LocalFileSystem(), os.path.abspath(path)


def split(path: str) -> tuple[str, str]:
    """(parent, last name) of a local path or a URI; a URI's options stay on the parent
    (`s3://b/runs/a?endpoint_override=h` -> `s3://b/runs?endpoint_override=h`, `a`)."""
    if is_uri(path):
        head, sep, query = str(path).partition("?")
        parent, name = head.rstrip("/").rsplit("/", 1)
        return (f"{parent}?{query}" if sep else parent), name
    path = os.path.abspath(path)
    return os.path.dirname(path), os.path.basename(path)


def for_ray(path: str) -> tuple[str, pafs.FileSystem | None]:
    """(storage_path, storage_filesystem) for Ray's RunConfig / Tuner.restore: an object
    store goes to Ray as this module's filesystem (retries included) and the path inside
    it; a local path goes as an absolute path with Ray's default filesystem."""
    if is_uri(path):
        fs, inside = resolve(path)
        return inside, fs
    return os.path.abspath(path), None


def check_writable(path: str, what: str) -> None:
    """Write and delete a probe object under `path`: a permission or missing-bucket error
    is one line now, before Ray starts, instead of a failed trial an hour later."""
    if not is_uri(path):
        return
    probe = join(path, tmp_name() + "-write-check")  # ".tmp-": ours if left behind
    try:
        write_bytes_atomic(probe, b"ok\n")
        fs, inside = resolve(probe)
        fs.delete_file(inside)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot write to {what} '{path}': {first}") from None


def join(base: str, *parts: str) -> str:
    if is_uri(base):
        # Keep URI options (`?endpoint_override=...&scheme=http`) after the joined path.
        head, sep, query = base.partition("?")
        joined = "/".join([head.rstrip("/"), *[p.strip("/") for p in parts]])
        return f"{joined}?{query}" if sep else joined
    return os.path.join(base, *parts)


def exists(path: str) -> bool:
    fs, p = resolve(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    fs, p = resolve(path)
    return fs.get_file_info(p).type == pafs.FileType.Directory


def makedirs(path: str) -> None:
    fs, p = resolve(path)
    fs.create_dir(p, recursive=True)


# Errors that no retry mends: the caller must hear them at once.
_PERMANENT = ("ACCESS_DENIED", "AccessDenied", "NoSuchBucket", "NO_SUCH_BUCKET", "NoSuchKey",
              "NO_SUCH_KEY", "RESOURCE_NOT_FOUND", "Path does not exist", "Forbidden",
              "not a directory", "is a directory")


def retrying(what: str, path: str, call: Callable[[], T]) -> T:
    """`call()` (one idempotent read or whole-object write on `path`), retried when it
    fails on an object store. The SDK retries a request that failed; a response body cut
    off after its headers ("Failed to flush response stream", a stall or reset mid-body)
    reaches us instead, not retried below. Same bound as the SDK's, backoff 0.2 s doubling
    to 5 s; each retry is logged. Local files and permanent errors: no retry."""
    attempts = s3.max_attempts() if is_uri(path) else 1
    for attempt in range(1, max(attempts, 1) + 1):
        try:
            return call()
        except FileNotFoundError:
            raise
        except OSError as exc:
            if attempt >= attempts or any(p in str(exc) for p in _PERMANENT):
                raise
            wait_s = min(5.0, 0.2 * 2 ** (attempt - 1))
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("storage: %s %s failed (%s); retry %d of %d in %.1f s", what,
                        path.split("?", 1)[0], first, attempt, attempts - 1, wait_s)
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def read_bytes(path: str) -> bytes:
    fs, p = resolve(path)

    def read() -> bytes:
        with fs.open_input_stream(p) as f:
            return f.read()

    return retrying("read", path, read)


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race other threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str, data: bytes) -> None:
    fs, p = resolve(path)
    if isinstance(fs, pafs.LocalFileSystem):
        directory = os.path.dirname(p)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # mkstemp makes the file 0600; give it the mode a plain open() would (umask).
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    # Object stores make an object visible only once its upload completes. No parent
    # "directory" is created: keys need none, and on S3 create_dir would try to create the
    # bucket (needing a region and extra permissions) and leave marker objects behind.
    def write() -> None:
        with fs.open_output_stream(p) as f:
            f.write(data)

    retrying("write", path, write)


def read_json(path: str) -> Any:
    return json.loads(read_bytes(path).decode())


def read_yaml(path: str, what: str) -> Any:
    """A YAML (or JSON) file's document, safely loaded; a missing file or a parse error is
    one line naming `what` ("sweep spec", "config file")."""
    import yaml

    if not exists(path):
        raise UserError(f"{what} '{path}' not found")
    try:
        return yaml.safe_load(read_bytes(path).decode())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise UserError(f"{what} '{path}' is not valid YAML: {first}") from None


def write_json_atomic(path: str, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def delete_dir(path: str) -> None:
    fs, p = resolve(path)
    if fs.get_file_info(p).type != pafs.FileType.NotFound:
        fs.delete_dir(p)


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Hold an flock on the local file `path` (created if missing) for the block: one
    process at a time on this machine. Closing the descriptor releases it, also on a crash."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def tmp_name() -> str:
    return f".tmp-{uuid.uuid4().hex[:8]}"
