"""`audiogan data download {maestro,sc09}`: fetch an official archive, verify it, unpack it.

Standard library only (urllib). The archive is streamed into `OUT/.partial/`; an interrupted
transfer is continued on the next run with an HTTP Range request (a server that ignores
Range answers 200 and the file is fetched again from the start). When complete it is checked
against a pinned size and SHA-256 where a trusted published value is known, else against the
server's length and a full archive-integrity walk; then unpacked atomically (see
`archive.py`) and `OUT/download-<dataset>.json` records what was fetched, including its
SHA-256. That manifest is written last: its presence means the dataset is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import logging
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from audiogan import __version__, storage
from audiogan.data import archive
from audiogan.errors import UserError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class Source:
    urls: tuple[str, ...]  # tried in order; the next only when one answers 404/410
    filename: str
    kind: str  # "zip" | "tar"
    size: int | None  # bytes, when a trusted published value is known
    sha256: str | None
    pin_source: str  # where the pinned values come from, or why there are none


SOURCES = {
    "maestro": Source(
        urls=("https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/"
              "maestro-v3.0.0-midi.zip",),
        filename="maestro-v3.0.0-midi.zip", kind="zip",
        size=58416533,
        sha256="70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c",
        pin_source="published by MusPy (salu133445/muspy, muspy/datasets/maestro.py, "
                   "MAESTRODatasetV3), which verifies the same URL on download"),
    "sc09": Source(
        # WaveGAN's README links the first; older copies of it link the second.
        urls=("http://deepyeti.ucsd.edu/cdonahue/wavegan/data/sc09.tar.gz",
              "http://deepyeti.ucsd.edu/cdonahue/sc09.tar.gz"),
        filename="sc09.tar.gz", kind="tar", size=None, sha256=None,
        pin_source="no published checksum found; verified by length and a full tar walk"),
}

_DEFAULT = object()


class TransferInterrupted(UserError):
    """The connection ended early; the partial file is kept and a re-run resumes it."""


def _progress(msg: str, final: bool = False) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r" + msg + ("\n" if final else ""))
    else:
        sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _open(url: str, offset: int, meta: dict, timeout: float):
    headers = {"User-Agent": f"audiogan/{__version__}"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:  # content changed since the partial began -> server answers 200 (restart)
            headers["If-Range"] = validator
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(url: str, part: str, timeout: float, show: bool) -> int:
    """Fetch url into `part`, continuing a previous partial file; returns the final size.

    Raises UserError (partial kept) when the transfer stops early.
    """
    meta_path = part + ".json"
    meta = {}
    if os.path.exists(part) and os.path.exists(meta_path):
        try:
            meta = json.loads(open(meta_path).read())
        except (OSError, ValueError):
            meta = {}
    if meta.get("url") != url:  # a partial from another URL cannot be continued
        meta = {"url": url}
        if os.path.exists(part):
            os.unlink(part)
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        resp = _open(url, offset, meta, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset and meta.get("total") == offset:
            return offset  # the partial is already complete
        if exc.code == 416:  # stale partial: start over
            os.unlink(part)
            return _transfer(url, part, timeout, show)
        raise
    with resp:
        status = resp.status
        length = resp.headers.get("Content-Length")
        total = None
        if status == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise UserError(f"{_host(url)} answered a Range request with a wrong Content-Range")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode = "ab"
        else:
            if offset:
                log.info("server ignored the Range request; fetching from the start")
            offset = 0
            total = int(length) if length is not None else None
            mode = "wb"
        meta.update(total=total, etag=resp.headers.get("ETag"),
                    last_modified=resp.headers.get("Last-Modified"))
        storage.write_json_atomic(meta_path, meta)
        done = offset
        name = os.path.basename(part)
        last = 0.0
        start, start_bytes = time.monotonic(), done
        with open(part, mode) as f:
            try:
                while True:
                    chunk = resp.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    f.write(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if show and now - last > (0.5 if sys.stderr.isatty() else 5.0):
                        last = now
                        rate = (done - start_bytes) / max(now - start, 1e-6) / 2**20
                        of = f"/{total / 2**20:.1f}" if total else ""
                        pct = f" ({100 * done / total:.0f}%)" if total else ""
                        _progress(f"downloading {name}: {done / 2**20:.1f}{of} MiB{pct} "
                                  f"{rate:.1f} MiB/s")
            except (http.client.HTTPException, OSError, socket.timeout) as exc:
                raise TransferInterrupted(
                    f"download of {name} from {_host(url)} interrupted at {done} of "
                    f"{total or '?'} bytes ({type(exc).__name__}); run the same command again "
                    "to resume") from exc
    if total is not None and done != total:
        raise TransferInterrupted(
            f"download of {name} from {_host(url)} stopped at {done} of {total} bytes "
            "(connection closed early); run the same command again to resume")
    if show:
        _progress(f"downloaded {name}: {done / 2**20:.1f} MiB", final=True)
    return done


def _fetch(urls: tuple[str, ...], part: str, timeout: float, attempts: int, show: bool) -> tuple[str, int]:
    """(url used, size); retries interruptions (resuming) up to `attempts` times."""
    for i, url in enumerate(urls):
        for attempt in range(1, attempts + 1):
            try:
                return url, _transfer(url, part, timeout, show)
            except urllib.error.HTTPError as exc:
                if exc.code in (404, 410) and i + 1 < len(urls):
                    log.info("%s answered %d; trying %s", url, exc.code, urls[i + 1])
                    break
                raise UserError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            except urllib.error.URLError as exc:  # DNS, refused, unreachable: no point retrying
                reason = getattr(exc, "reason", exc)
                raise UserError(f"cannot reach {_host(url)} ({reason}); check the network "
                                "connection (offline?) or pass --url with a reachable mirror") from exc
            except (socket.timeout, TimeoutError) as exc:
                raise UserError(f"{_host(url)} did not answer within the timeout; check the "
                                "network or raise --timeout") from exc
            except TransferInterrupted as exc:
                if attempt == attempts:
                    raise
                log.warning("%s; resuming (attempt %d of %d)", exc, attempt + 1, attempts)
                time.sleep(min(2.0 ** attempt, 10.0))
    raise UserError(f"no URL for the archive answered ({', '.join(urls)})")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def manifest_path(out: str, dataset: str) -> str:
    return os.path.join(out, f"download-{dataset}.json")


def download(dataset: str, out: str, url: str | None = None, timeout: float = 30.0, *,
             expected_sha256=_DEFAULT, expected_size=_DEFAULT, attempts: int = 3,
             show_progress: bool = True) -> dict:
    """Fetch, verify and unpack `dataset` into `out`; returns the manifest (also on disk).

    `expected_sha256` / `expected_size` default to the pinned values (None: no pin). A mirror
    (`url`) must serve the identical archive: the pins still apply.
    """
    if dataset not in SOURCES:
        raise UserError(f"unknown dataset '{dataset}' (choose from {', '.join(SOURCES)})")
    if storage.is_uri(out):
        raise UserError("data download writes to a local directory; --out must be a local path")
    src = SOURCES[dataset]
    sha = src.sha256 if expected_sha256 is _DEFAULT else expected_sha256
    size = src.size if expected_size is _DEFAULT else expected_size
    out = os.path.abspath(out)
    mpath = manifest_path(out, dataset)
    if os.path.exists(mpath):
        manifest = storage.read_json(mpath)
        if all(os.path.exists(os.path.join(out, t)) for t in manifest.get("top_level", [])):
            _progress(f"{dataset} already downloaded in {out} (sha256 {manifest['sha256'][:12]}…)",
                      final=True)
            return manifest
    try:
        os.makedirs(os.path.join(out, ".partial"), exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}") from exc
    part = os.path.join(out, ".partial", src.filename)
    urls = (url,) if url else src.urls
    try:
        used, nbytes = _fetch(urls, part, timeout, max(1, attempts), show_progress)
    except UserError:
        if not os.listdir(os.path.dirname(part)):  # nothing to resume: leave no trace
            os.rmdir(os.path.dirname(part))
        raise

    def discard(reason: str) -> UserError:
        for p in (part, part + ".json"):
            if os.path.exists(p):
                os.unlink(p)
        return UserError(f"{src.filename} from {_host(used)}: {reason}; the download was "
                         "discarded, run the command again to fetch it afresh")

    if size is not None and nbytes != size:
        raise discard(f"size {nbytes} bytes, expected {size}")
    digest = sha256_file(part)
    if sha is not None and digest != sha:
        raise discard(f"SHA-256 {digest}, expected {sha}")
    try:
        names = archive.check_archive(part, src.kind)
    except UserError as exc:
        raise discard(str(exc)) from exc
    _progress(f"verified {src.filename} ({len(names)} members); unpacking", final=True)
    tops = archive.unpack(part, src.kind, out, names)
    manifest = {
        "dataset": dataset, "url": used, "filename": src.filename, "bytes": nbytes,
        "sha256": digest, "verified": "pinned sha256" if sha else "size + archive integrity",
        "pinned_sha256": sha, "pin_source": src.pin_source if sha == src.sha256 else "caller",
        "members": len(names), "top_level": tops, "audiogan": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    storage.write_json_atomic(mpath, manifest)
    for p in (part, part + ".json"):
        os.unlink(p)
    if not os.listdir(os.path.join(out, ".partial")):
        os.rmdir(os.path.join(out, ".partial"))
    _progress(f"{dataset}: {', '.join(os.path.join(out, t) for t in tops)} "
              f"(sha256 {digest})", final=True)
    return manifest


def cli_main(args) -> int:
    download(args.dataset, args.out, url=args.url, timeout=args.timeout)
    return 0
