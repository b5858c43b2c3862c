"""PianoGAN (WaveGAN-style 1-D DCGAN) and SpectoGAN (SpecGAN 2-D DCGAN) for WGAN-GP.

Modules take explicit keyword arguments; `audiogan.builders.build_generator` /
`build_critic` make them from a `Config`, with the example shape from the data manifest.

PianoGAN, width d (WaveGAN with three instead of five upsamplings, since 4 * 4^3 = 256):
  generator  z[100] -> dense -> [8d, 4] -> ConvT1d k25 s4: 8d->4d (16) -> 2d (64) -> 3 (256)
             ReLU after the dense layer and between the convolutions, tanh out.
  critic     [3, 256] -> Conv1d k25 s4: 3->2d (64) -> 4d (16) -> 8d (4), LeakyReLU 0.2,
             phase shuffle (n) after the first two layers, no batch norm, dense -> score.
SpectoGAN, width d (SpecGAN):
  generator  z[100] -> dense -> [16d, 4, 4] -> five ConvT2d 5x5 s2: 16d->8d->4d->2d->d->1,
             [1, 128, 128], ReLU between, tanh out.
  critic     mirrors it: Conv2d 5x5 s2: 1->d->2d->4d->8d->16d (4x4), LeakyReLU 0.2, no
             batch norm, dense -> score.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiogan.errors import UserError

PIANO_CHANNELS = 3
PIANO_LENGTH = 256
SPEC_SIZE = 128


class PhaseShuffle(nn.Module):
    """Shift the time axis by a random k in [-n, n], reflection-padded, length kept.

    As WaveGAN, one shift per call (per batch); identity in eval mode and for n = 0.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = int(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n == 0 or not self.training:
            return x
        k = int(torch.randint(-self.n, self.n + 1, ()).item())
        return phase_shift(x, k)


def phase_shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """x[..., t - k] with reflection at the borders (k > 0 shifts right)."""
    if k == 0:
        return x
    length = x.shape[-1]
    pad_left, pad_right = max(k, 0), max(-k, 0)
    padded = F.pad(x, (pad_left, pad_right), mode="reflect")
    return padded[..., pad_right:pad_right + length]


class PianoGenerator(nn.Module):
    def __init__(self, *, d: int, latent_dim: int = 100, channels: int = PIANO_CHANNELS) -> None:
        super().__init__()
        self.d, self.latent_dim = d, latent_dim
        self.dense = nn.Linear(latent_dim, 8 * d * 4)
        # padding 11 + output_padding 1 makes each layer exactly x4 in length.
        self.up = nn.ModuleList([
            nn.ConvTranspose1d(8 * d, 4 * d, 25, stride=4, padding=11, output_padding=1),
            nn.ConvTranspose1d(4 * d, 2 * d, 25, stride=4, padding=11, output_padding=1),
            nn.ConvTranspose1d(2 * d, channels, 25, stride=4, padding=11, output_padding=1),
        ])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.dense(z)).view(z.shape[0], 8 * self.d, 4)
        for i, conv in enumerate(self.up):
            x = conv(x)
            x = torch.tanh(x) if i == len(self.up) - 1 else F.relu(x)
        return x


class PianoCritic(nn.Module):
    def __init__(self, *, d: int, length: int = PIANO_LENGTH, channels: int = PIANO_CHANNELS,
                 phase_shuffle: int = 2) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv1d(channels, 2 * d, 25, stride=4, padding=11),
            nn.Conv1d(2 * d, 4 * d, 25, stride=4, padding=11),
            nn.Conv1d(4 * d, 8 * d, 25, stride=4, padding=11),
        ])
        self.shuffles = nn.ModuleList([PhaseShuffle(phase_shuffle), PhaseShuffle(phase_shuffle)])
        self.out = nn.Linear(8 * d * (length // 64), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), 0.2)
            if i < len(self.shuffles):
                x = self.shuffles[i](x)
        return self.out(x.flatten(1)).squeeze(1)


class SpecGenerator(nn.Module):
    def __init__(self, *, d: int, latent_dim: int = 100) -> None:
        super().__init__()
        self.d, self.latent_dim = d, latent_dim
        self.dense = nn.Linear(latent_dim, 16 * d * 4 * 4)
        widths = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
        self.up = nn.ModuleList([
            nn.ConvTranspose2d(a, b, 5, stride=2, padding=2, output_padding=1)
            for a, b in zip(widths[:-1], widths[1:])
        ])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.dense(z)).view(z.shape[0], 16 * self.d, 4, 4)
        for i, conv in enumerate(self.up):
            x = conv(x)
            x = torch.tanh(x) if i == len(self.up) - 1 else F.relu(x)
        return x


class SpecCritic(nn.Module):
    def __init__(self, *, d: int, size: int = SPEC_SIZE) -> None:
        super().__init__()
        widths = [1, d, 2 * d, 4 * d, 8 * d, 16 * d]
        self.convs = nn.ModuleList([
            nn.Conv2d(a, b, 5, stride=2, padding=2) for a, b in zip(widths[:-1], widths[1:])
        ])
        side = size // 32
        self.out = nn.Linear(16 * d * side * side, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.out(x.flatten(1)).squeeze(1)


def network_shape(family: str, example_shape: Sequence[int]) -> tuple[int, ...]:
    """Manifest example shape -> network layout, checked against what the networks make."""
    shape = tuple(int(s) for s in example_shape)
    if family == "pianogan":
        if shape != (PIANO_LENGTH, PIANO_CHANNELS):
            raise UserError(f"pianogan needs examples of shape [256, 3] (window 256), data has "
                            f"{list(shape)}")
        return (PIANO_CHANNELS, PIANO_LENGTH)
    if family == "spectogan":
        if shape != (SPEC_SIZE, SPEC_SIZE):
            raise UserError(f"spectogan needs examples of shape [128, 128], data has {list(shape)}")
        return (1, SPEC_SIZE, SPEC_SIZE)
    raise UserError(f"unknown model family '{family}'")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def example_shape_for(family: str) -> list[int]:
    """The manifest example shape a family trains on (for param counts and dry runs)."""
    return [PIANO_LENGTH, PIANO_CHANNELS] if family == "pianogan" else [SPEC_SIZE, SPEC_SIZE]
