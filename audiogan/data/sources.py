"""Which files a dataset holds: (path, key, split, label) per source kind.

Labels: the digit for sc09 and fsdd, the folder name for `wav-dir`, MAESTRO's
`canonical_composer` for maestro, none ("") for `midi-dir`.

Splits: maestro from its CSV, sc09 from its folders or lists (else Speech Commands' hash of
the speaker), fsdd by take. `midi-dir` and `wav-dir` have no split of their own: they get
80/10/10 by Speech Commands' sha1 percentages, of the speaker id where the file name carries
one (so a speaker's files share a split: the held-out floor never hears a training
speaker), else of the path relative to `--source` (`split_rule` describes it for the
manifest). A corpus of fewer than 10 groups stays in train: too few to hold out a tenth.

Keys are paths relative to `--source` (posix); they are only ever stored as strings, and
a name from the data (CSV entry, folder name) that would leave the source is rejected,
so nothing read from the data decides where a file is read from outside `--source` or
written to (outputs are only ever `shards/part-N.parquet`, `rejects.jsonl`, `manifest.json`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import posixpath
import re
from typing import Any, Iterable

from audiogan import storage
from audiogan.errors import UserError

KINDS = ("maestro", "sc09", "fsdd", "midi-dir", "wav-dir")
MIDI_EXTS = (".mid", ".midi")
WAV_EXTS = (".wav",)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAESTRO_CSV = "maestro-v3.0.0.csv"
UNSAFE = "unsafe_path"  # reject reason for a listed name that escapes --source
MISSING = "unreadable"
_FSDD_NAME = re.compile(r"^(\d)_([^_/]+)_(\d+)\.wav$", re.IGNORECASE)
# Speaker ids in file names (matched on the base name without extension): FSDD's
# DIGIT_SPEAKER_TAKE and Speech Commands' SPEAKER_nohash_N (WaveGAN's sc09 prefixes Label_).
_GROUP_NAMES = (re.compile(r"^\d_(?P<speaker>[^_]+)_\d+$"),
                re.compile(r"^(?:[A-Za-z]+_)?(?P<speaker>[^_]+)_nohash_\d+$"))
MIN_SPLIT_GROUPS = 10
HASH_SPLIT_RULE = (
    "80/10/10 by sha1 as Speech Commands' which_set (validation < 10%, test < 20%) of the "
    "speaker id where the file name carries one (FSDD DIGIT_SPEAKER_TAKE, Speech Commands "
    "[Label_]SPEAKER_nohash_N; all files of a speaker in one split), else of the path "
    "relative to --source")
SMALL_SPLIT_RULE = (f"all train: fewer than {MIN_SPLIT_GROUPS} groups (speakers or files) "
                    "are too few to hold out 10% each")
_WAVEGAN_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
# Speech Commands' `which_set` (input_data.py): sha1 of the speaker id, 10% / 10%.
_MAX_WAVS_PER_CLASS = 2 ** 27 - 1


def media(kind: str) -> str:
    """'midi' or 'wav' for a source kind."""
    return "midi" if kind in ("maestro", "midi-dir") else "wav"


def _item(source: str, key: str, split: str, label: str, reject: str = "") -> dict[str, str]:
    return {"path": storage.join(source, key), "key": key, "split": split, "label": label,
            "reject": reject}


def _safe_key(name: str) -> str | None:
    """A normalised relative posix path inside the source, or None if it would escape."""
    key = posixpath.normpath(name.replace("\\", "/"))
    if key.startswith("/") or key == ".." or key.startswith("../") or key in ("", "."):
        return None
    return key


def walk(source: str, exts: Iterable[str]) -> list[str]:
    """Relative keys of every entry named with one of `exts` (files, links, and directories
    named like files: those are listed so they are rejected, not silently skipped)."""
    exts = tuple(e.lower() for e in exts)
    keys: list[str] = []
    if storage.is_uri(source):
        from pyarrow.fs import FileSelector

        fs, root = storage.resolve(source)
        root = root.rstrip("/")
        for info in fs.get_file_info(FileSelector(root, recursive=True)):
            if info.path.lower().endswith(exts):
                keys.append(info.path[len(root) + 1:])
        return sorted(keys)
    root = os.path.abspath(source)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = os.path.relpath(dirpath, root)
        for name in filenames + [d for d in dirnames if d.lower().endswith(exts)]:
            if name.lower().endswith(exts):
                keys.append(name if rel == "." else posixpath.join(rel.replace(os.sep, "/"), name))
        dirnames[:] = sorted(d for d in dirnames if not d.lower().endswith(exts))
    return sorted(keys)


def _maestro(source: str) -> list[dict[str, str]]:
    csv_path = storage.join(source, MAESTRO_CSV)
    if not storage.exists(csv_path):
        raise UserError(f"'{source}' has no {MAESTRO_CSV}: is it the MAESTRO v3 folder?")
    rows = list(csv.DictReader(io.StringIO(storage.read_bytes(csv_path).decode("utf-8"))))
    if not rows or "midi_filename" not in rows[0] or "split" not in rows[0]:
        raise UserError(f"{MAESTRO_CSV} in '{source}' lacks midi_filename/split columns")
    items = []
    for row in rows:
        split = row["split"].strip()
        key = _safe_key(row["midi_filename"])
        if split not in ("train", "validation", "test"):
            raise UserError(f"{MAESTRO_CSV}: unknown split '{split}' for {row['midi_filename']}")
        # The composer is the label (PianoGAN's classes, audiogan.data.labels).
        composer = (row.get("canonical_composer") or "").strip()
        if key is None:
            items.append({"path": "", "key": row["midi_filename"], "split": split,
                          "label": composer, "reject": UNSAFE})
        else:
            items.append(_item(source, key, split, composer))
    return items


def hash_split(name: str) -> str:
    """Speech Commands' `which_set` percentages on sha1(name): 10% validation, 10% test."""
    h = int(hashlib.sha1(name.encode()).hexdigest(), 16)
    percentage = (h % (_MAX_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_WAVS_PER_CLASS)
    if percentage < 10:
        return "validation"
    return "test" if percentage < 20 else "train"


def speech_commands_split(filename: str) -> str:
    """Speech Commands' stable split of a clip by the sha1 of its speaker id (10% / 10%)."""
    return hash_split(re.sub(r"_nohash_.*$", "", posixpath.basename(filename)))


def split_group(key: str) -> tuple[str, str]:
    """("speaker", id) when the file name carries a speaker id, else ("path", key)."""
    stem = posixpath.splitext(posixpath.basename(key))[0]
    for pattern in _GROUP_NAMES:
        m = pattern.match(stem)
        if m:
            return "speaker", m.group("speaker")
    return "path", key


def _hashed_splits(keys: list[str]) -> dict[str, str]:
    """key -> split for midi-dir / wav-dir (see the module docstring)."""
    groups = {k: split_group(k) for k in keys}
    if len(set(groups.values())) < MIN_SPLIT_GROUPS:
        return {k: "train" for k in keys}
    return {k: hash_split(name) for k, (_, name) in groups.items()}


def split_rule(kind: str, items: Iterable[dict[str, str]]) -> dict[str, Any] | None:
    """For the manifest: the split rule midi-dir / wav-dir applied, with files per split."""
    if kind not in ("midi-dir", "wav-dir"):
        return None  # the source's own split (CSV, folders, lists, takes)
    items = list(items)
    n_groups = len({split_group(it["key"]) for it in items})
    counts = {s: sum(it["split"] == s for it in items) for s in ("train", "validation", "test")}
    return {"rule": HASH_SPLIT_RULE if n_groups >= MIN_SPLIT_GROUPS else SMALL_SPLIT_RULE,
            "groups": n_groups, "counts": counts}


def _read_list(source: str, name: str) -> set[str] | None:
    path = storage.join(source, name)
    if not storage.exists(path):
        return None
    text = storage.read_bytes(path).decode("utf-8")
    return {line.strip() for line in text.splitlines() if line.strip()}


def sc09_layout(source: str) -> str:
    """'wavegan' (train/ valid/ test/ with Label_speaker_nohash_N.wav) or 'speech_commands'."""
    if any(storage.is_dir(storage.join(source, d)) for d in _WAVEGAN_SPLITS):
        return "wavegan"
    if any(storage.is_dir(storage.join(source, d)) for d in DIGITS):
        return "speech_commands"
    raise UserError(f"'{source}' is neither WaveGAN's sc09 layout (train/ valid/ test/) nor "
                    "Speech Commands' (zero/ ... nine/)")


def _sc09(source: str) -> list[dict[str, str]]:
    items = []
    if sc09_layout(source) == "wavegan":
        for key in walk(source, WAV_EXTS):
            top, _, name = key.partition("/")
            if top not in _WAVEGAN_SPLITS or "/" in name:
                continue
            word = name.split("_", 1)[0].lower()
            label = str(DIGITS.index(word)) if word in DIGITS else ""
            items.append(_item(source, key, _WAVEGAN_SPLITS[top], label,
                               "" if label else "unknown_label"))
        return items
    validation = _read_list(source, "validation_list.txt")
    testing = _read_list(source, "testing_list.txt")
    for key in walk(source, WAV_EXTS):
        top, _, name = key.partition("/")
        if top not in DIGITS or "/" in name:
            continue  # SC09 is the ten digit words; other folders are not ours
        if validation is not None and testing is not None:
            split = "validation" if key in validation else "test" if key in testing else "train"
        else:
            split = speech_commands_split(name)
        items.append(_item(source, key, split, str(DIGITS.index(top))))
    return items


def fsdd_split(take: int) -> str:
    return "test" if take <= 4 else "validation" if take <= 9 else "train"


def _fsdd(source: str) -> list[dict[str, str]]:
    items = []
    for key in walk(source, WAV_EXTS):
        m = _FSDD_NAME.match(key)
        if m is None:
            items.append(_item(source, key, "train", "", "bad_name"))
            continue
        items.append(_item(source, key, fsdd_split(int(m.group(3))), m.group(1)))
    return items


def _wav_dir(source: str) -> list[dict[str, str]]:
    keys = walk(source, WAV_EXTS)
    splits = _hashed_splits(keys)
    return [_item(source, k, splits[k], posixpath.dirname(k).rsplit("/", 1)[-1]) for k in keys]


def _midi_dir(source: str) -> list[dict[str, str]]:
    keys = walk(source, MIDI_EXTS)
    splits = _hashed_splits(keys)
    return [_item(source, k, splits[k], "") for k in keys]


def list_items(kind: str, source: str) -> list[dict[str, str]]:
    """Every input of a dataset, sorted by key; `reject` is set for names already bad."""
    if kind not in KINDS:
        raise UserError(f"unknown source kind '{kind}' (choose from {', '.join(KINDS)})")
    if not storage.is_dir(source):
        raise UserError(f"--source '{source}' is not a directory")
    lister = {"maestro": _maestro, "sc09": _sc09, "fsdd": _fsdd, "midi-dir": _midi_dir,
              "wav-dir": _wav_dir}[kind]
    items = sorted(lister(source), key=lambda it: it["key"])
    if not items:
        raise UserError(f"no {media(kind)} files found for '{kind}' under '{source}'")
    return items
