"""S3 for `audiogan.storage`: pyarrow's S3 client with the project's retry bound, timeouts
and SDK log level, kept through pickling.

An s3:// URI opens a `RetryingS3FileSystem`: the AWS SDK's standard retry strategy raised
to `AUDIOGAN_S3_MAX_ATTEMPTS` attempts (default 10; exponential backoff with jitter, within
the SDK's retry quota). 5xx answers, throttling (SlowDown, 503), connection resets and
timeouts are retried by the SDK on every call: shard reads, checkpoint uploads (Ray Train
and Tune get this filesystem), result writes. A request that receives no data for
`AUDIOGAN_S3_REQUEST_TIMEOUT_S` seconds (default 10) is abandoned and retried. The SDK's
own retries are logged ("Request failed, now waiting 184 ms before attempting again", on
stdout) with `AUDIOGAN_S3_LOG_LEVEL=warn`, in the driver and in every Ray worker the
filesystem is shipped to; the default, fatal, is quiet, because at warn the SDK is noisy.
What the SDK leaves (a body cut off after its headers) is `storage.retrying`'s.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import pyarrow
import pyarrow.fs as pafs

from audiogan.errors import UserError

log = logging.getLogger(__name__)

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


def max_attempts() -> int:
    """AUDIOGAN_S3_MAX_ATTEMPTS, checked (default 10)."""
    attempts = int(_env_number(S3_MAX_ATTEMPTS_ENV, 10))
    if attempts < 1:
        raise UserError(f"{S3_MAX_ATTEMPTS_ENV} must be >= 1")
    return attempts


def resolve(path: str) -> tuple[RetryingS3FileSystem, str]:
    """(filesystem, "bucket/key") for an s3:// URI; its query holds pyarrow's URI options."""
    from urllib.parse import unquote

    head, _, query = path[len("s3://"):].partition("?")
    bucket = head.split("/", 1)[0]
    if "@" in bucket:
        raise UserError(f"storage URI 's3://{head.split('@')[-1]}': credentials do "
                        "not belong in a URI; use the AWS environment or profile")
    if not bucket:
        raise UserError(f"cannot open storage URI '{path}': no bucket")
    fs = _s3_filesystem(bucket, query, max_attempts(),
                        _env_number(S3_REQUEST_TIMEOUT_ENV, 10.0), s3_log_level())
    return fs, unquote(head.rstrip("/"))
