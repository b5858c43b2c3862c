"""Local paths and `pyarrow.fs` URIs (file://, s3://, gs://) behind one small API.

Writes are atomic: local files go through a temp file and `os.replace`; object stores
publish an object only when its upload completes.

Object-storage faults: an s3:// URI opens a `RetryingS3FileSystem`, pyarrow's S3 client
with the AWS SDK's standard retry strategy raised to `AUDIOGAN_S3_MAX_ATTEMPTS` attempts
(default 10; exponential backoff with jitter, within the SDK's retry quota): 5xx answers,
throttling (SlowDown, 503), connection resets and timeouts are retried by the SDK, on every
call -- shard reads, checkpoint uploads (Ray Train and Tune get this filesystem), result
writes. A request that receives no data for `AUDIOGAN_S3_REQUEST_TIMEOUT_S` seconds
(default 10) is abandoned and retried. The SDK does not retry a response whose body is cut
off after its headers; `retrying` does, for this module's whole-object reads and writes
and for shard reads, and logs every retry as a warning. The SDK's own retries are logged
("Request failed, now waiting 184 ms before attempting again", on stdout) with
`AUDIOGAN_S3_LOG_LEVEL=warn`, in the driver and in every Ray worker it ships the
filesystem to (default fatal: at warn the SDK is noisy). Permanent
errors (access denied, a missing bucket) are not retried; `check_writable` makes them one
line before Ray starts.
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

import pyarrow
import pyarrow.fs as pafs

from audiogan.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")


S3_MAX_ATTEMPTS_ENV = "AUDIOGAN_S3_MAX_ATTEMPTS"
S3_REQUEST_TIMEOUT_ENV = "AUDIOGAN_S3_REQUEST_TIMEOUT_S"
S3_LOG_LEVEL_ENV = "AUDIOGAN_S3_LOG_LEVEL"
S3_CONNECT_TIMEOUT_S = 10.0
# The URI options pyarrow's S3 URIs take (`?endpoint_override=...&scheme=http`).
_S3_URI_OPTIONS = {"region": str, "scheme": str, "endpoint_override": str,
                   "allow_bucket_creation": bool, "allow_bucket_deletion": bool,
                   "tls_ca_file_path": str, "force_virtual_addressing": bool}


def s3_log_level() -> str:
    """AUDIOGAN_S3_LOG_LEVEL, checked: the AWS SDK's log level (default fatal, as pyarrow's)."""
    raw = (os.environ.get(S3_LOG_LEVEL_ENV, "") or "fatal").lower()
    if raw.capitalize() not in pafs.S3LogLevel.__members__:
        raise UserError(f"{S3_LOG_LEVEL_ENV}={raw!r}: one of "
                        f"{', '.join(m.lower() for m in pafs.S3LogLevel.__members__)}")
    return raw


@functools.lru_cache(maxsize=1)
def _init_s3_logging(level: str) -> None:
    """Start the AWS SDK at `level` before this process's first S3 call.

    At warn the SDK prints each retry it makes ("Request failed, now waiting 184 ms before
    attempting again"), to stdout, along with much else (a block for every 404 answer to an
    existence check): so it is opt-in. The level is fixed by a process's first S3 call, so
    it is set here, before any S3 filesystem or region lookup; a Ray worker gets the
    driver's level inside the pickled filesystem."""
    try:
        pafs.initialize_s3(pafs.S3LogLevel.__members__[level.capitalize()])
    except pyarrow.ArrowInvalid:  # something in this process used S3 first: its level stays
        log.debug("S3 already initialised; %s=%s not applied", S3_LOG_LEVEL_ENV, level)


def _rebuild_s3(options: dict[str, Any]) -> "RetryingS3FileSystem":
    return RetryingS3FileSystem(**options)


class RetryingS3FileSystem(pafs.S3FileSystem):
    """pyarrow's S3FileSystem with the project's retry bound and timeouts, which survive
    pickling (pyarrow's own pickle drops the retry strategy, and Ray pickles the storage
    filesystem to every worker)."""

    def __init__(self, *, max_attempts: int, log_level: str = "fatal", **options: Any) -> None:
        _init_s3_logging(log_level)
        super().__init__(retry_strategy=pafs.AwsStandardS3RetryStrategy(
            max_attempts=max_attempts), **options)
        self._options = {"max_attempts": max_attempts, "log_level": log_level, **options}

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return _rebuild_s3, (dict(self._options),)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise UserError(f"{name}={raw!r} is not a number") from None


@functools.lru_cache(maxsize=32)
def _s3_filesystem(bucket: str, query: str, max_attempts: int, request_timeout_s: float,
                   log_level: str) -> RetryingS3FileSystem:
    from urllib.parse import parse_qsl

    _init_s3_logging(log_level)  # before the region lookup below, which starts the SDK
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        kind = _S3_URI_OPTIONS.get(key)
        if kind is None:
            raise UserError(f"unknown S3 URI option '{key}' (known: "
                            f"{', '.join(sorted(_S3_URI_OPTIONS))})")
        options[key] = value.lower() in ("1", "true", "yes") if kind is bool else value
    if "region" not in options and "endpoint_override" not in options:
        # What FileSystem.from_uri does: ask S3 where the bucket lives (the SDK's default
        # region would get a redirect for a bucket elsewhere).
        try:
            options["region"] = pafs.resolve_s3_region(bucket)
        except OSError as exc:
            raise UserError(f"cannot find S3 bucket '{bucket}': {exc}") from None
    return RetryingS3FileSystem(max_attempts=max_attempts, log_level=log_level,
                                request_timeout=request_timeout_s,
                                connect_timeout=S3_CONNECT_TIMEOUT_S, **options)


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI; s3:// gets the retrying
    filesystem (module docstring)."""
    path = str(path)
    if is_uri(path):
        if path.startswith("s3://"):
            from urllib.parse import unquote

            head, _, query = path[len("s3://"):].partition("?")
            bucket = head.split("/", 1)[0]
            if "@" in bucket:
                raise UserError(f"storage URI 's3://{head.split('@')[-1]}': credentials do "
                                "not belong in a URI; use the AWS environment or profile")
            if not bucket:
                raise UserError(f"cannot open storage URI '{path}': no bucket")
            attempts = int(_env_number(S3_MAX_ATTEMPTS_ENV, 10))
            if attempts < 1:
                raise UserError(f"{S3_MAX_ATTEMPTS_ENV} must be >= 1")
            fs = _s3_filesystem(bucket, query, attempts,
                                _env_number(S3_REQUEST_TIMEOUT_ENV, 10.0), s3_log_level())
            return fs, unquote(head.rstrip("/"))
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
    attempts = int(_env_number(S3_MAX_ATTEMPTS_ENV, 10)) if is_uri(path) else 1
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
