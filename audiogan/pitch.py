"""PianoGAN's one-hot pitch (`model.pitch: onehot`): pitch as a distribution over keys.

The paper's PianoGAN emits pitch as one scaled value, (p - 64.5) / 43.5, later rounded. One
semitone is then 0.023 of the tanh range, so a generator whose pitch is off by a fraction
of a semitone lands on a neighbouring key: pitch classes come out uniform (the quality
ablation's 3.554 bits in every row, results/quality/ablation.md) whatever else it learns.

Here the networks see pitch as P = pitch_max - pitch_min + 1 channels (88 for the piano):
real notes one-hot, generated notes a softmax over the keys at each position, followed by
the two time channels (step, duration, scaled as before): [N, P + 2, window]. This is how
Gulrajani et al. (2017, "Improved Training of Wasserstein GANs") trained their language-model
WGAN-GP on characters: a softmax generator against one-hot data, with a 1-D CNN critic.
The data stay [N, 3, window] (shards and metrics unchanged); real batches are encoded as
they are drawn (`encode`), and generated examples are decoded by argmax (`decode`), which
`audiogan.data.shards.from_network` applies to any example with P + 2 channels.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from audiogan.data.scaling import NOTE_FIELDS

TIME_CHANNELS = len(NOTE_FIELDS) - 1  # step, duration: every note field but pitch


def n_keys(pitch_min: int, pitch_max: int) -> int:
    return int(pitch_max) - int(pitch_min) + 1


class OneHotPitch:
    """Scaled notes [N, 3, L] <-> one-hot layout [N, P + 2, L], with the scaling constants
    the data were made with (`data.pitch_center`, `pitch_scale`, `pitch_min`, `pitch_max`)."""

    def __init__(self, *, pitch_center: float, pitch_scale: float, pitch_min: int,
                 pitch_max: int) -> None:
        self.center, self.scale = float(pitch_center), float(pitch_scale)
        self.pitch_min, self.n = int(pitch_min), n_keys(pitch_min, pitch_max)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Real scaled notes [N, 3, L] -> [N, P + 2, L] (pitches outside the range clamp)."""
        key = torch.round(x[:, 0] * self.scale + self.center).long() - self.pitch_min
        onehot = torch.nn.functional.one_hot(key.clamp(0, self.n - 1), self.n)  # [N, L, P]
        return torch.cat([onehot.permute(0, 2, 1).to(x.dtype), x[:, 1:]], dim=1)

    def decode(self, y: np.ndarray) -> np.ndarray:
        """[N, P + 2, L] -> scaled notes [N, 3, L]: the most probable key at each position."""
        y = np.asarray(y)
        if y.shape[1] != self.n + TIME_CHANNELS:
            raise ValueError(f"one-hot notes need {self.n + TIME_CHANNELS} channels, got "
                             f"{y.shape[1]}")
        pitch = np.argmax(y[:, :self.n], axis=1) + self.pitch_min
        scaled = ((pitch - self.center) / self.scale).astype(y.dtype)
        return np.concatenate([scaled[:, None], y[:, self.n:]], axis=1)

    def expected(self, y: torch.Tensor) -> torch.Tensor:
        """[N, P + 2, L] -> scaled notes [N, 3, L] with the probability-weighted pitch: a
        differentiable stand-in for `decode` (GAN inversion measures distances with it)."""
        keys = torch.arange(self.n, dtype=y.dtype, device=y.device) + self.pitch_min
        pitch = (y[:, :self.n] * keys[None, :, None]).sum(1, keepdim=True)
        return torch.cat([(pitch - self.center) / self.scale, y[:, self.n:]], dim=1)

    @classmethod
    def from_scaling(cls, note_scaling: Mapping[str, Any]) -> "OneHotPitch":
        return cls(pitch_center=note_scaling["pitch_center"],
                   pitch_scale=note_scaling["pitch_scale"],
                   pitch_min=note_scaling["pitch_min"], pitch_max=note_scaling["pitch_max"])


def activate(x: torch.Tensor, n_keys_: int) -> torch.Tensor:
    """The one-hot generator's output layer: softmax over the key channels, tanh on time."""
    return torch.cat([torch.softmax(x[:, :n_keys_], dim=1), torch.tanh(x[:, n_keys_:])], dim=1)
