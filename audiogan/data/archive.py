"""Archive integrity checks and safe, atomic unpacking (zip and tar, standard library only).

An archive is checked completely before anything is written: every member's CRC (zip) or
every member header through to the end of the compressed stream (tar), and every member's
name and type. Members that would land outside the target directory (absolute paths, `..`,
drive letters), links and device files are refused, so a hostile or corrupt archive cannot
write anywhere but the temporary directory. Extraction goes into a temporary directory
inside the target and the top-level entries are then renamed into place.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import PurePosixPath

from audiogan.errors import UserError

log = logging.getLogger(__name__)


def _check_name(name: str, archive: str) -> str:
    """The member's normalised relative path, or UserError when it would escape the target."""
    clean = name.replace("\\", "/")
    path = PurePosixPath(clean)
    if clean.startswith("/") or path.is_absolute() or (len(clean) > 1 and clean[1] == ":"):
        raise UserError(f"{archive}: member '{name}' has an absolute path; refusing to unpack")
    if ".." in path.parts:
        raise UserError(f"{archive}: member '{name}' would land outside the output directory; "
                        "refusing to unpack")
    return str(path)


def _zip_is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def check_zip(path: str) -> list[str]:
    """Member names after CRC-checking every member; UserError on corruption or unsafe members."""
    label = os.path.basename(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_name(info.filename, label)
                if _zip_is_link(info):
                    raise UserError(f"{label}: member '{info.filename}' is a symbolic link; "
                                    "refusing to unpack")
            bad = zf.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise UserError(f"{label} is not a valid zip archive ({exc})") from exc
    if bad is not None:
        raise UserError(f"{label}: member '{bad}' fails its CRC check (corrupt download)")
    if not infos:
        raise UserError(f"{label} is an empty archive")
    return [i.filename for i in infos]


def check_tar(path: str) -> list[str]:
    """Member names after reading every member (catches truncation); UserError on unsafe members."""
    label = os.path.basename(path)
    names = []
    try:
        with tarfile.open(path, mode="r:*") as tf:
            for member in tf:
                _check_name(member.name, label)
                if member.issym() or member.islnk():
                    raise UserError(f"{label}: member '{member.name}' is a link; refusing to unpack")
                if not (member.isfile() or member.isdir()):
                    raise UserError(f"{label}: member '{member.name}' is a special file; "
                                    "refusing to unpack")
                if member.isfile():
                    # Reading the data verifies the compressed stream reaches this member's end.
                    with tf.extractfile(member) as f:
                        while f.read(1 << 20):
                            pass
                names.append(member.name)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise UserError(f"{label} is not a valid tar archive ({exc})") from exc
    if not names:
        raise UserError(f"{label} is an empty archive")
    return names


def check_archive(path: str, kind: str) -> list[str]:
    if kind == "zip":
        return check_zip(path)
    if kind == "tar":
        return check_tar(path)
    raise ValueError(f"unknown archive kind {kind!r}")


def _extract_zip(path: str, dest: str) -> None:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            rel = _check_name(info.filename, os.path.basename(path))
            target = os.path.realpath(os.path.join(dest, rel))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                raise UserError(f"member '{info.filename}' would land outside the output directory")
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _extract_tar(path: str, dest: str) -> None:
    with tarfile.open(path, mode="r:*") as tf:
        # The 'data' filter (3.11.4+) refuses links, devices and escaping paths a second time.
        tf.extractall(dest, filter="data")


def top_level(names: list[str]) -> list[str]:
    """Distinct first path components, in archive order."""
    seen: dict[str, None] = {}
    for name in names:
        first = PurePosixPath(name.replace("\\", "/")).parts
        if first:
            seen.setdefault(first[0], None)
    return list(seen)


def unpack(path: str, kind: str, out_dir: str, names: list[str]) -> list[str]:
    """Extract into a temp dir inside out_dir, then rename each top-level entry into out_dir.

    Refuses (before writing anything) when a top-level entry already exists in out_dir.
    Returns the top-level entries now in out_dir.
    """
    tops = top_level(names)
    for top in tops:
        if os.path.lexists(os.path.join(out_dir, top)):
            raise UserError(f"{os.path.join(out_dir, top)} already exists and was not made by "
                            "`audiogan data download`; remove it or choose another --out")
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=out_dir)
    try:
        (_extract_zip if kind == "zip" else _extract_tar)(path, tmp)
        for top in tops:
            os.replace(os.path.join(tmp, top), os.path.join(out_dir, top))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tops
