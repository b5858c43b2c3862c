"""`audiogan data demo --out DIR`: small demo datasets built offline from pip packages only.

- `DIR/maestro-v3.0.0/`: piano MIDI in the MAESTRO v3 layout with its CSV, rendered from the
  Bach chorales bundled with music21 (`demo_piano.py`).
- `DIR/sc09/`: spoken digits zero..nine in the Speech Commands layout, 16 kHz 16-bit 1 s
  clips synthesised with the espeak-ng that `espeakng-loader` bundles (`demo_speech.py`).
- `DIR/PROVENANCE.json`: parameters, seeds, package versions, counts and how everything
  was made. Written last: its presence with the same parameters means "complete", and a
  re-run then does nothing. Each part is built in a temp dir inside DIR and renamed in place.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone

from audiogan import __version__, storage
from audiogan.data import demo_piano, demo_speech
from audiogan.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_N_MIDI = 80  # x 5 chorales: ~400 of music21's 409
DEFAULT_N_PER_DIGIT = 36
DEMO_FORMAT = 1  # bump when the generated data changes for the same parameters
MARKER = ".audiogan-demo"  # inside each part: safe to replace on a re-run
PARTS = (demo_piano.ROOT, "sc09")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _check_packages() -> None:
    missing = [d for d in ("music21", "espeakng-loader", "pretty_midi", "soundfile", "scipy")
               if _version(d) is None]
    if missing:
        raise UserError(f"the demo needs the pip packages {', '.join(missing)} "
                        "(pip install 'audiogan[demo]')")


def _is_complete(out: str, params: dict) -> bool:
    path = os.path.join(out, "PROVENANCE.json")
    if not os.path.exists(path):
        return False
    try:
        prov = storage.read_json(path)
    except (OSError, ValueError):
        return False
    return prov.get("params") == params and all(os.path.isdir(os.path.join(out, p)) for p in PARTS)


def _clear_previous(out: str) -> None:
    """Remove parts left by an earlier demo run; refuse to touch anything else."""
    for part in PARTS:
        path = os.path.join(out, part)
        if not os.path.lexists(path):
            continue
        if not os.path.exists(os.path.join(path, MARKER)):
            raise UserError(f"{path} exists and is not demo data; choose another --out")
        shutil.rmtree(path)
    for name in os.listdir(out):
        if name.startswith(".demo-"):
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    if os.path.exists(os.path.join(out, "PROVENANCE.json")):
        os.unlink(os.path.join(out, "PROVENANCE.json"))


def _build_part(out: str, part: str, build, *args) -> tuple[dict, float]:
    staging = tempfile.mkdtemp(prefix=".demo-", dir=out)
    try:
        root = os.path.join(staging, part)
        os.makedirs(root)
        t = time.monotonic()
        summary = build(root, *args)
        open(os.path.join(root, MARKER), "w").close()
        os.replace(root, os.path.join(out, part))
        return summary, time.monotonic() - t
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_demo(out: str, n_midi: int | None = None, n_per_digit: int | None = None,
               seed: int = 0) -> dict:
    """Build (or find complete) the demo datasets in `out`; returns the provenance."""
    if storage.is_uri(out):
        raise UserError("data demo writes to a local directory; --out must be a local path")
    _check_packages()
    n_midi = DEFAULT_N_MIDI if n_midi is None else n_midi
    n_per_digit = DEFAULT_N_PER_DIGIT if n_per_digit is None else n_per_digit
    if n_per_digit < 1:
        raise UserError("--n-per-digit must be at least 1")
    n_chorales = len(demo_piano.chorale_paths())
    max_midi = n_chorales // demo_piano.CHORALES_PER_FILE
    if not 1 <= n_midi <= max_midi:
        raise UserError(f"--n-midi must be 1..{max_midi} ({n_chorales} chorales in music21, "
                        f"{demo_piano.CHORALES_PER_FILE} per file)")
    params = {"n_midi": n_midi, "n_per_digit": n_per_digit, "seed": seed, "format": DEMO_FORMAT}
    out = os.path.abspath(out)
    if _is_complete(out, params):
        _say(f"demo data in {out} is complete for these parameters; nothing to do")
        return storage.read_json(os.path.join(out, "PROVENANCE.json"))
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}") from exc
    _clear_previous(out)
    _say(f"piano: rendering {n_midi} MIDI files from {n_midi * demo_piano.CHORALES_PER_FILE} "
         "music21 Bach chorales")
    piano, piano_s = _build_part(out, demo_piano.ROOT, demo_piano.build, n_midi, seed)
    _say(f"piano: {piano['files']} files, {piano['notes']} notes, "
         f"{piano['windows_256_no_overlap']} windows of 256, splits {piano['splits']} "
         f"({piano_s:.1f} s)")
    _say(f"digits: synthesising {10 * n_per_digit} clips with espeak-ng")
    speech, speech_s = _build_part(out, "sc09", demo_speech.build, n_per_digit, seed)
    _say(f"digits: {speech['clips']} clips, {len(speech['speakers'])} speakers, "
         f"splits {speech['splits']} ({speech_s:.1f} s)")
    provenance = {
        "generator": "audiogan data demo", "audiogan": __version__, "params": params,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "packages": {d: _version(d) for d in ("music21", "espeakng-loader", "pretty_midi",
                                              "numpy", "scipy", "soundfile")},
        "python": platform.python_version(),
        "seconds": {"piano": round(piano_s, 1), "digits": round(speech_s, 1)},
        "piano": {
            "layout": "MAESTRO v3 (maestro-v3.0.0/YEAR/NAME.midi + maestro-v3.0.0.csv)",
            "source": "music21 corpus: Bach chorales (MusicXML, quantised four-part scores), "
                      "read by audiogan.data.musicxml (checked note for note against music21)",
            "chorales_per_file": demo_piano.CHORALES_PER_FILE,
            "rendering": "ties merged, unisons merged, same-pitch overlaps ended at the later "
                         "onset; per chorale a tempo (score mark +-5% or 60-92 bpm), AR(1) "
                         "tempo drift (<= +-12%), fermatas held 1.5-2.1 beats, final "
                         "ritardando; onset jitter N(0, 8 ms) with a 6 ms melody lead; "
                         "articulation 84-96% of the written length; velocity by voice and "
                         "phrase (+-9) plus N(0, 4); one piano track, 960 ticks/beat, 120 bpm",
            "caveat": "rendered scores with synthetic expression, not recorded performances",
            "seeds": {"selection_and_split": [seed, 0], "file_j": [seed, 1, "j"]},
            **piano,
        },
        "digits": {
            "layout": "Speech Commands (sc09/zero..nine/SPEAKER_nohash_N.wav, "
                      "validation_list.txt, testing_list.txt)",
            "format": "16 kHz, mono, 16-bit PCM, 16000 samples (1 s)",
            "synthesis": "espeak-ng via espeakng-loader (ctypes), English accents x voice "
                         "variants; per speaker pitch 20-80, range 20-90, rate 110-185 wpm; "
                         "per take pitch +-8, range +-10, rate +-15",
            "augmentation": "resampled to 16 kHz (polyphase), silence trimmed; p=0.5 room "
                            "reverb (RT60 0.08-0.4 s); peak -20..-1 dBFS; uniform time shift "
                            "in the clip; white/pink/brown noise or mains hum at SNR 5-35 dB",
            "caveat": "synthetic speech for demos and pipeline tests, not a stand-in for SC09",
            "seeds": {"speakers": [seed, 2], "splits": [seed, 3],
                      "voice_params": [seed, 4, "digit", "speaker", "take"],
                      "augmentation": [seed, 5, "digit", "speaker", "take"]},
            **speech,
        },
    }
    storage.write_json_atomic(os.path.join(out, "PROVENANCE.json"), provenance)
    _say(f"demo data ready in {out}")
    return provenance


def cli_main(args) -> int:
    build_demo(args.out, n_midi=args.n_midi, n_per_digit=args.n_per_digit, seed=args.seed)
    return 0
