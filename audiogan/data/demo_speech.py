"""Demo spoken digits in the Speech Commands (SC09) layout, synthesised offline with espeak-ng.

pip `espeakng-loader` bundles libespeak-ng and its data; it is driven here through ctypes.
Each synthetic "speaker" is an English accent + voice variant with its own pitch, pitch
range and speaking rate; each take varies those slightly. The clean 22.05 kHz speech is then
resampled to 16 kHz, optionally given a short synthetic room reverb, scaled to a random
level, shifted in time within the 1 s clip and mixed with background noise (white, pink,
brown or mains hum) at a random SNR. Splits are by speaker, as Speech Commands does, and
written to `validation_list.txt` / `testing_list.txt`.

espeak-ng keeps state between utterances (its pitch flutter runs on), so the same request
sounds different later in a process; synthesis therefore runs in a fresh spawned process,
which makes the output a function of the seed alone.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import math
import multiprocessing
import os

import numpy as np

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000  # Speech Commands clips are 1 s
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
            "klatt2", "klatt3", "klatt4", "croak", "Andy", "annie", "benjamin", "caleb", "david",
            "ed", "iven", "john", "linda", "max", "michel", "paul", "quincy", "steph", "travis")
NOISES = ("white", "pink", "brown", "hum")
_OUTPUT_SYNCHRONOUS = 2
_RATE, _PITCH, _RANGE = 1, 3, 4
_CHARS_UTF8 = 1
_POS_CHARACTER = 1


class Espeak:
    """Minimal ctypes binding: synchronous synthesis into int16 arrays."""

    def __init__(self, seed: int) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                               ctypes.c_int]
        self.sample_rate = self.lib.espeak_Initialize(
            _OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise")
        self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_Info.restype = ctypes.c_char_p
        self.chunks: list[np.ndarray] = []
        proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                 ctypes.c_void_p)
        self._callback = proto(self._collect)  # kept referenced: espeak holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n, events) -> int:
        if wav and n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def version(self) -> str:
        return self.lib.espeak_Info(None).decode()

    def say(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice '{voice}'")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self.chunks = []
        data = text.encode()
        if self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                 None, None) != 0:
            raise RuntimeError(f"espeak-ng failed on '{text}' with voice '{voice}'")
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


def synthesise(jobs: list[tuple], seed: int) -> tuple[str, int, list[np.ndarray]]:
    """(espeak version, sample rate, int16 audio per job); run in a fresh process."""
    engine = Espeak(seed)
    return engine.version(), engine.sample_rate, [engine.say(*job) for job in jobs]


def synthesise_fresh(jobs: list[tuple], seed: int) -> tuple[str, int, list[np.ndarray]]:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        return ex.submit(synthesise, jobs, seed).result()


def make_speakers(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 2])
    combos = [(a, v) for a in ACCENTS for v in VARIANTS]
    picks = rng.permutation(len(combos))
    speakers = []
    for k in range(n):
        accent, variant = combos[picks[k % len(combos)]]
        spk = {"voice": f"{accent}+{variant}", "pitch": int(rng.integers(20, 81)),
               "range": int(rng.integers(20, 91)), "rate": int(rng.integers(110, 186))}
        spk["id"] = hashlib.sha1(f"{seed}:{k}:{sorted(spk.items())}".encode()).hexdigest()[:8]
        speakers.append(spk)
    return speakers


def speaker_splits(n: int, seed: int) -> list[str]:
    """Per speaker: ~80/10/10 train/validation/test (each held-out split >= 1 of 3+)."""
    from audiogan.data.demo_piano import split_of

    return split_of(n, np.random.default_rng([seed, 3]))


def _trim(x: np.ndarray, floor: float = 1e-3, margin: int = 160) -> np.ndarray:
    idx = np.nonzero(np.abs(x) > floor * max(np.abs(x).max(), 1e-9))[0]
    if len(idx) == 0:
        return x
    return x[max(0, idx[0] - margin): idx[-1] + margin]


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.normal(0, 1, n)
    if kind == "white":
        return white
    if kind == "brown":
        b = np.cumsum(white)
        return b - np.convolve(b, np.ones(801) / 801, mode="same")  # remove the wander
    if kind == "pink":
        spec = np.fft.rfft(white)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        spec[0] = 0
        return np.fft.irfft(spec, n)
    t = np.arange(n) / SAMPLE_RATE  # mains hum with harmonics and a little hiss
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(np.sin(2 * math.pi * f0 * h * t + rng.uniform(0, 2 * math.pi)) / h for h in (1, 2, 3, 5))
    return hum + 0.1 * white


def augment(raw: np.ndarray, source_rate: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """int16 espeak output -> float 1 s clip at 16 kHz, plus the parameters drawn."""
    from scipy.signal import fftconvolve, resample_poly

    g = math.gcd(SAMPLE_RATE, source_rate)
    x = resample_poly(raw.astype(np.float64) / 32768.0, SAMPLE_RATE // g, source_rate // g)
    x = _trim(x)
    info: dict = {}
    if rng.random() < 0.5:  # small room: exponentially decaying noise tail
        rt60 = rng.uniform(0.08, 0.4)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        ir = rng.normal(0, 1, len(t)) * np.exp(-6.9 * t / rt60)
        ir *= rng.uniform(0.1, 0.35) / np.sqrt(np.sum(ir ** 2))
        ir[0] = 1.0
        x = fftconvolve(x, ir)[: len(x) + len(ir) // 2]
        info["reverb_rt60_s"] = round(rt60, 3)
    x = x[:CLIP_SAMPLES]
    peak_db = rng.uniform(-20.0, -1.0)
    x = x / max(np.abs(x).max(), 1e-9) * 10 ** (peak_db / 20)
    shift = int(rng.integers(0, CLIP_SAMPLES - len(x) + 1))
    clip = np.zeros(CLIP_SAMPLES)
    clip[shift: shift + len(x)] = x
    kind = NOISES[rng.integers(len(NOISES))]
    snr_db = rng.uniform(5.0, 35.0)
    noise = _noise(kind, CLIP_SAMPLES, rng)
    speech_rms = np.sqrt(np.mean(x ** 2))
    noise *= speech_rms / max(np.sqrt(np.mean(noise ** 2)), 1e-12) / 10 ** (snr_db / 20)
    info.update(peak_dbfs=round(peak_db, 2), shift_samples=shift, noise=kind, snr_db=round(snr_db, 2))
    return np.clip(clip + noise, -1.0, 32767 / 32768), info


def build(root: str, n_per_digit: int, seed: int) -> dict:
    """Write `root` (= OUT/sc09 staging dir): zero/ .. nine/ wavs + split lists; a summary."""
    import soundfile as sf

    takes = 2 if n_per_digit >= 8 else 1
    n_speakers = math.ceil(n_per_digit / takes)
    speakers = make_speakers(n_speakers, seed)
    splits = speaker_splits(n_speakers, seed)
    plan = []  # (digit, speaker index, take)
    for d in DIGITS:
        for i in range(n_per_digit):
            plan.append((d, i // takes, i % takes))
    jobs = []
    for d, k, take in plan:
        rng = np.random.default_rng([seed, 4, DIGITS.index(d), k, take])
        spk = speakers[k]
        jobs.append((d, spk["voice"], int(np.clip(spk["rate"] + rng.integers(-15, 16), 80, 260)),
                     int(np.clip(spk["pitch"] + rng.integers(-8, 9), 0, 99)),
                     int(np.clip(spk["range"] + rng.integers(-10, 11), 0, 99))))
    version, rate, audio = synthesise_fresh(jobs, seed)
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    noise_counts: dict[str, int] = {}
    for (d, k, take), raw in zip(plan, audio):
        if len(raw) == 0:
            raise RuntimeError(f"espeak-ng produced no audio for '{d}' ({speakers[k]['voice']})")
        rng = np.random.default_rng([seed, 5, DIGITS.index(d), k, take])
        clip, info = augment(raw, rate, rng)
        rel = f"{d}/{speakers[k]['id']}_nohash_{take}.wav"
        os.makedirs(os.path.join(root, d), exist_ok=True)
        pcm = np.round(clip * 32768).astype(np.int16)
        sf.write(os.path.join(root, rel), pcm, SAMPLE_RATE, subtype="PCM_16")
        if splits[k] in lists:
            lists[splits[k]].append(rel)
        noise_counts[info["noise"]] = noise_counts.get(info["noise"], 0) + 1
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        with open(os.path.join(root, name), "w") as f:
            f.writelines(line + "\n" for line in sorted(lists[split]))
    for k, spk in enumerate(speakers):
        spk["split"] = splits[k]
    return {"clips": len(plan), "per_digit": n_per_digit, "takes_per_speaker": takes,
            "espeak_ng": version, "espeak_sample_rate": rate,
            "splits": {s: sum(takes_of(k, plan) for k in range(n_speakers) if splits[k] == s)
                       for s in ("train", "validation", "test")},
            "noise_counts": dict(sorted(noise_counts.items())), "speakers": speakers}


def takes_of(k: int, plan: list[tuple]) -> int:
    return sum(1 for _, kk, _ in plan if kk == k)
