"""Network-facing scaling, applied when loading shards (constants from the manifest).

Notes: pitch (p - 64.5) / 43.5; step and duration t -> log(t + eps), mapped linearly from
[log eps, log(t_max + eps)] to [-1, 1]. Spectrograms: (x - mean) / std / 3 per frequency
bin, clipped to [-1, 1]. Each forward map has its exact inverse inside the clip range.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

# A note in the network layout: one channel each, scaled notes are [N, 3, window].
NOTE_FIELDS = ("pitch", "step", "duration")


def note_constants(data_cfg: Any) -> dict[str, float]:
    """The scaling constants recorded in the manifest and in every checkpoint."""
    return {
        "pitch_center": float(data_cfg.pitch_center),
        "pitch_scale": float(data_cfg.pitch_scale),
        "pitch_min": int(data_cfg.pitch_min),
        "pitch_max": int(data_cfg.pitch_max),
        "time_eps_s": float(data_cfg.time_eps_s),
        "time_max_s": float(data_cfg.time_max_s),
    }


def _time_bounds(c: Mapping[str, float]) -> tuple[float, float]:
    return float(np.log(c["time_eps_s"])), float(np.log(c["time_max_s"] + c["time_eps_s"]))


def scale_notes(raw: np.ndarray, c: Mapping[str, float]) -> np.ndarray:
    """[..., 3] (pitch, step_s, duration_s) -> [..., 3] in [-1, 1]; times above t_max clip."""
    raw = np.asarray(raw, dtype=np.float64)
    out = np.empty_like(raw)
    out[..., 0] = (raw[..., 0] - c["pitch_center"]) / c["pitch_scale"]
    lo, hi = _time_bounds(c)
    t = np.clip(raw[..., 1:3], 0.0, c["time_max_s"])
    out[..., 1:3] = 2.0 * (np.log(t + c["time_eps_s"]) - lo) / (hi - lo) - 1.0
    return out.astype(np.float32)


def unscale_notes(scaled: np.ndarray, c: Mapping[str, float], round_pitch: bool = True
                  ) -> np.ndarray:
    """Inverse of `scale_notes`; pitches rounded and clamped to pitch_min..pitch_max."""
    s = np.asarray(scaled, dtype=np.float64)
    out = np.empty_like(s)
    pitch = s[..., 0] * c["pitch_scale"] + c["pitch_center"]
    if round_pitch:
        pitch = np.clip(np.rint(pitch), c["pitch_min"], c["pitch_max"])
    out[..., 0] = pitch
    lo, hi = _time_bounds(c)
    t = np.exp(lo + (np.clip(s[..., 1:3], -1.0, 1.0) + 1.0) / 2.0 * (hi - lo)) - c["time_eps_s"]
    out[..., 1:3] = np.maximum(t, 0.0)
    return out


def normalise_spec(logmag: np.ndarray, mean: np.ndarray, std: np.ndarray, clip_std: float = 3.0
                   ) -> np.ndarray:
    """[..., frames, bins] log magnitudes -> [-1, 1]; mean/std are per bin ([bins])."""
    x = (np.asarray(logmag, dtype=np.float64) - mean) / std / clip_std
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def denormalise_spec(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip_std: float = 3.0
                     ) -> np.ndarray:
    return (np.asarray(x, dtype=np.float64) * clip_std * std + mean).astype(np.float32)
