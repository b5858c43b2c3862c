"""Local paths and `pyarrow.fs` URIs (file://, s3://, gs://) behind one small API.

Writes are atomic: local files go through a temp file and `os.replace`; object stores
publish an object only when its upload completes.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import tempfile
import uuid
from typing import Any, Iterator

import pyarrow.fs as pafs

from audiogan.errors import UserError


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI."""
    path = str(path)
    if is_uri(path):
        try:
            return pafs.FileSystem.from_uri(path)
        except Exception as exc:  # pyarrow raises several types for bad URIs
            raise UserError(f"cannot open storage URI '{path}': {exc}") from exc
    return pafs.LocalFileSystem(), os.path.abspath(path)


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


def read_bytes(path: str) -> bytes:
    fs, p = resolve(path)
    with fs.open_input_stream(p) as f:
        return f.read()


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
    with fs.open_output_stream(p) as f:
        f.write(data)


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
