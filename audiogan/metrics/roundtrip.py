"""The audio round trip: what a listener hears of a spectrogram, analysed again.

network-layout spectrogram -> denormalise with the dataset's statistics ->
`spectro.griffin_lim` (the run's iterations and momentum; the sampler's inversion) -> audio
-> `spectro.log_magnitude` -> normalise with the same statistics, clip to [-1, 1].

Complex spectrograms (`representation: complex`) become audio by the exact inverse STFT
(`complex_spec.synthesise`, no Griffin-Lim) and are heard as log magnitudes of a
log-magnitude dataset (`heard_as`: the reference dataset's statistics), so the same
classifier and bins score complex and log-magnitude runs.

Every listening metric (`eval/is`, `eval/is_real`, `eval/cond_acc`) scores spectrograms
after this round trip, generated and real alike, and the digit classifier trains on
round-tripped clips: a spectrogram Griffin-Lim cannot turn into audio (an inconsistent
one, e.g. a fine loud/silent checkerboard) must not score as the digit it resembles.

The audio is not peak-normalised as `audiogan sample` does before writing a wav: a
listener's volume knob undoes that, and the level is left to the classifier's ±12 dB
augmentation; without it the round trip of a consistent spectrogram is close to identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiogan.data import complex_spec, shards, spectro

BATCH = 64  # Griffin-Lim batch: the size its one-thread timing was measured at


def to_audio(x_network: np.ndarray, manifest: dict[str, Any], *, n_iter: int,
             momentum: float = 0.0, batch_size: int = BATCH) -> torch.Tensor:
    """[N, C, frames, bins] network-layout spectrograms -> [N, 16384] float32 audio:
    Griffin-Lim (`n_iter`, `momentum`) for log magnitudes, the exact inverse for complex."""
    x = np.asarray(x_network)
    if shards.is_complex(manifest):
        out = [torch.as_tensor(complex_spec.synthesise(
            torch.from_numpy(shards.from_network(x[i:i + batch_size], manifest))))
            for i in range(0, len(x), batch_size)]
    else:
        out = [spectro.griffin_lim(shards.from_network(x[i:i + batch_size], manifest),
                                   n_iter=n_iter, momentum=momentum)
               for i in range(0, len(x), batch_size)]
    return torch.cat(out).float() if out else torch.zeros((0, spectro.CLIP_SAMPLES))


def from_audio(audio: torch.Tensor | np.ndarray, manifest: dict[str, Any],
               batch_size: int = BATCH) -> np.ndarray:
    """[N, 16384] audio -> [N, 1, frames, bins] normalised, clipped log-magnitude
    spectrograms (`manifest`: a log-magnitude dataset's)."""
    assert not shards.is_complex(manifest), "heard as log magnitudes of a log-magnitude dataset"
    audio = torch.as_tensor(audio)
    out = []
    with torch.inference_mode():
        for i in range(0, len(audio), batch_size):
            raw = spectro.log_magnitude(audio[i:i + batch_size].float()).numpy()
            out.append(shards.to_network(raw, manifest))
    shape = (0, 1, *manifest["example_shape"])
    return np.concatenate(out) if out else np.zeros(shape, np.float32)


def heard_as(x_network: np.ndarray, manifest: dict[str, Any], listen: dict[str, Any], *,
             n_iter: int, momentum: float = 0.0, batch_size: int = BATCH) -> np.ndarray:
    """Examples of `manifest`'s representation -> audio -> the log-magnitude network layout
    of the dataset `listen` (its statistics), in batches of `batch_size`."""
    x = np.asarray(x_network)
    out = [from_audio(to_audio(x[i:i + batch_size], manifest, n_iter=n_iter,
                               momentum=momentum, batch_size=batch_size), listen, batch_size)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 1, *listen["example_shape"]),
                                                     np.float32)


def round_trip(x_network: np.ndarray, manifest: dict[str, Any], *, n_iter: int,
               momentum: float = 0.0, batch_size: int = BATCH) -> np.ndarray:
    """Log-magnitude spectrograms as a listener would hear them, in network layout (module
    docstring).

    Batched through Griffin-Lim and the STFT `batch_size` at a time (examples are
    independent: the result does not depend on the batch size beyond float rounding).
    """
    return heard_as(x_network, manifest, manifest, n_iter=n_iter, momentum=momentum,
                    batch_size=batch_size)
