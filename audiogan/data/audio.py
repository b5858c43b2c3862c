"""Reading source files and turning a wav into one 16384-sample mono 16 kHz clip.

Bad input is never an error here: it raises `Rejected(reason)`, which the pipeline lists
in `rejects.jsonl`. Repairs (DESIGN.md input-handling table, rows marked F) are returned
as stable reason strings and counted in the manifest.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import struct

import numpy as np
import soundfile as sf

from audiogan import storage

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16384
MIN_SECONDS = 0.1
SILENCE_PEAK = 1e-4

# Stable reason strings (they appear in rejects.jsonl and manifest.json).
ZERO_BYTE = "zero_byte"
UNREADABLE = "unreadable"            # missing, dangling link, link loop, a directory
UNPARSEABLE = "unparseable"
TRUNCATED = "truncated"
WRONG_FORMAT = "wrong_format"
NAN_INF = "nan_or_inf"
SILENT = "silent"
TOO_SHORT = "too_short"

_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS")


class Rejected(Exception):
    """A source file that cannot become an example; `reason` is a stable string."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def read_source(path: str) -> bytes:
    """Bytes of a local path or URI; unreadable/empty inputs raise `Rejected`."""
    try:
        if storage.is_uri(path):
            if storage.is_dir(path):
                raise Rejected(UNREADABLE, "is a directory")
            data = storage.read_bytes(path)
        else:
            # A FIFO would block open() forever, a link to /dev/zero would never end:
            # only regular files are read (stat follows links; a directory is EISDIR below).
            mode = os.stat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise Rejected(UNREADABLE, "not a regular file")
            with open(path, "rb") as f:
                data = f.read()
    except Rejected:
        raise
    except OSError as exc:  # ENOENT (dangling link), ELOOP, EISDIR, EACCES...
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        raise Rejected(UNREADABLE, name) from None
    if not data:
        raise Rejected(ZERO_BYTE)
    return data


def _riff_truncated(data: bytes) -> bool:
    """True if a RIFF/WAVE file's data chunk claims more bytes than the file holds."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if chunk == b"data":
            return size != 0xFFFFFFFF and pos + 8 + size > len(data)
        pos += 8 + size + (size & 1)
    return True  # no data chunk before the end


def decode_wav(data: bytes) -> tuple[np.ndarray, int, str]:
    """-> (float32 [frames, channels] in [-1, 1] for int formats, sample rate, subtype)."""
    if data[:4] not in _AUDIO_MAGIC:
        raise Rejected(WRONG_FORMAT)
    if _riff_truncated(data):
        raise Rejected(TRUNCATED)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            audio = f.read(dtype="float32", always_2d=True)
            return audio, int(f.samplerate), str(f.subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise Rejected(UNPARSEABLE, str(exc)[:80]) from None


def resample(x: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (deterministic, exact ratio)."""
    from scipy.signal import resample_poly

    g = math.gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def loudest_window(x: np.ndarray, n: int = CLIP_SAMPLES) -> np.ndarray:
    """The n-sample window with the most energy (earliest on ties)."""
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    start = int(np.argmax(c[n:] - c[:-n]))
    return x[start:start + n]


def clip_from_wav(data: bytes) -> tuple[np.ndarray, list[str]]:
    """Wav bytes -> (float32 [16384] mono 16 kHz clip, repairs applied)."""
    audio, rate, subtype = decode_wav(data)
    repairs: list[str] = []
    if not np.isfinite(audio).all():
        raise Rejected(NAN_INF)
    if subtype != "PCM_16":
        repairs.append(f"converted_{subtype.lower()}")
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > 1.0:  # float files may exceed full scale: scale down, never clip
            audio = audio / peak
    if audio.shape[1] > 1:
        audio = audio.mean(axis=1, dtype=np.float32)[:, None]
        repairs.append("mixed_to_mono")
    x = audio[:, 0]
    if len(x) < MIN_SECONDS * rate:
        raise Rejected(TOO_SHORT, f"{len(x) / rate:.3f} s")
    if float(np.abs(x).max()) < SILENCE_PEAK:
        raise Rejected(SILENT)
    if rate != SAMPLE_RATE:
        x = np.clip(resample(x, rate), -1.0, 1.0)
        repairs.append("resampled")
    if len(x) < CLIP_SAMPLES:
        x = np.pad(x, (0, CLIP_SAMPLES - len(x)))
        repairs.append("padded")
    elif len(x) > CLIP_SAMPLES:
        x = loudest_window(x)
        repairs.append("trimmed")
    return np.ascontiguousarray(x, dtype=np.float32), repairs
