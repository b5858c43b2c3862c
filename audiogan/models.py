"""PianoGAN (WaveGAN-style 1-D DCGAN) and SpectoGAN (SpecGAN 2-D DCGAN) for WGAN-GP or R1.

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
  channels   1 above is the log-magnitude representation's; the channel count comes from
             the data manifest's example shape (`network_shape`): [C, 128, 128] examples
             (complex: C = 2, real and imaginary) make the generator end at d->C and the
             critic start at C->d (+ 25 d (C - 1) weights each, + C - 1 biases in G).

Options (both families; the defaults above are the paper's and keep its parameters exactly):
  n_classes > 0 (model.conditional): class-conditional networks, called as
             `generator(z, labels)` / `critic(x, labels)` with label indices [N] (int64).
             Generator: a learned embedding e(y) [EMBED_DIM] is concatenated to z, so the
             dense layer reads [latent_dim + EMBED_DIM] (+ n_classes * EMBED_DIM weights,
             + EMBED_DIM * its outputs). Critic: projection discriminator (Miyato & Koyama
             2018): with h the flattened features the dense layer reads,
             score = dense(h) + <v(y), h>, v a learned [n_classes, len(h)] embedding
             (+ n_classes * len(h) weights). The score stays one linear function of h, so
             WGAN-GP and R1 apply unchanged; each example's output depends only on its own
             (z, y) or (x, y).
  pitch_keys = P > 0 (model.pitch onehot, PianoGAN): pitch as P key channels, so examples
             are [P + 2, 256]; the generator's last layer ends in a softmax over the keys
             and tanh on step and duration, the critic's first layer reads P + 2 channels
             (audiogan.pitch).
  upsample = "nearest" (model.upsample): each transposed convolution becomes
             nearest-neighbour upsampling by its stride followed by a stride-1 convolution
             of the same kernel, 'same' padding (WaveGAN's `nn` option; Odena et al. 2016,
             against checkerboard artefacts). Same shapes, same parameter count.
`n_classes` is an attribute of every network (0 = unconditional).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiogan import pitch
from audiogan.conv1d import GemmConv1d, GemmConvTranspose1d
from audiogan.data.scaling import NOTE_FIELDS
from audiogan.errors import UserError

PIANO_CHANNELS = len(NOTE_FIELDS)  # pitch, step, duration
PIANO_LENGTH = 256
SPEC_SIZE = 128
# Generator label embedding width: ample for tens of classes; N(0, 1) entries give it about
# the norm of a 100-d z ~ U[-1, 1] (5.7 vs 5.8), so neither input swamps the other.
EMBED_DIM = 32
UPSAMPLES = ("transpose", "nearest")


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


def _check_labels(n_classes: int, labels: torch.Tensor | None) -> None:
    if n_classes and labels is None:
        raise ValueError("a conditional network needs labels")
    if not n_classes and labels is not None:
        raise ValueError("an unconditional network takes no labels")


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsampling by `scale`, then `conv` (stride 1, 'same' padding)."""

    def __init__(self, conv: nn.Module, scale: int) -> None:
        super().__init__()
        self.conv, self.scale = conv, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


def _check_upsample(upsample: str) -> None:
    if upsample not in UPSAMPLES:
        raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")


def _up1d(a: int, b: int, upsample: str) -> nn.Module:
    _check_upsample(upsample)
    if upsample == "nearest":
        return UpsampleConv(nn.Conv1d(a, b, 25, padding=12), 4)
    # padding 11 + output_padding 1 makes each layer exactly x4 in length. (GEMM form on
    # CPU where oneDNN is slow, audiogan.conv1d: same parameters, same outputs.)
    return GemmConvTranspose1d(a, b, 25, stride=4, padding=11, output_padding=1)


def _up2d(a: int, b: int, upsample: str) -> nn.Module:
    _check_upsample(upsample)
    if upsample == "nearest":
        return UpsampleConv(nn.Conv2d(a, b, 5, padding=2), 2)
    return nn.ConvTranspose2d(a, b, 5, stride=2, padding=2, output_padding=1)


class _Generator(nn.Module):
    """z [+ e(y)] -> dense -> ReLU -> `up` layers (ReLU between, tanh out).

    Subclasses register `dense` and `up`, then call `_add_embedding`: registration order is
    initialisation order and the optimiser's parameter order, so the unconditional
    networks keep the paper's (and older checkpoints') exactly.
    """

    def __init__(self, *, latent_dim: int, n_classes: int) -> None:
        super().__init__()
        if n_classes < 0:
            raise ValueError("n_classes must be >= 0")
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.dense_in = latent_dim + (EMBED_DIM if n_classes else 0)

    def _add_embedding(self) -> None:
        if self.n_classes:
            self.embed = nn.Embedding(self.n_classes, EMBED_DIM)

    def _run(self, z: torch.Tensor, labels: torch.Tensor | None, shape: tuple[int, ...]
             ) -> torch.Tensor:
        _check_labels(self.n_classes, labels)
        if self.n_classes:
            z = torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)
        x = F.relu(self.dense(z)).view(z.shape[0], *shape)
        for i, layer in enumerate(self.up):
            x = layer(x)
            x = self._out(x) if i == len(self.up) - 1 else F.relu(x)
        return x

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class _Critic(nn.Module):
    """Convolutions -> flattened features h -> out(h) [+ <embed(y), h>].

    Subclasses register their convolutions, then call `_add_head` (order as in `_Generator`).
    """

    def __init__(self, *, n_classes: int) -> None:
        super().__init__()
        if n_classes < 0:
            raise ValueError("n_classes must be >= 0")
        self.n_classes = n_classes

    def _add_head(self, features: int) -> None:
        self.out = nn.Linear(features, 1)
        if self.n_classes:
            # The dense layer's own init scale, so the projection starts as large as it.
            self.embed = nn.Embedding(self.n_classes, features)
            bound = 1.0 / features ** 0.5
            nn.init.uniform_(self.embed.weight, -bound, bound)

    def _score(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        _check_labels(self.n_classes, labels)
        h = h.flatten(1)
        score = self.out(h).squeeze(1)
        if self.n_classes:
            score = score + (self.embed(labels).to(h.dtype) * h).sum(1)
        return score


class PianoGenerator(_Generator):
    def __init__(self, *, d: int, latent_dim: int = 100, channels: int = PIANO_CHANNELS,
                 n_classes: int = 0, upsample: str = "transpose", pitch_keys: int = 0) -> None:
        super().__init__(latent_dim=latent_dim, n_classes=n_classes)
        if pitch_keys and channels != pitch_keys + 2:
            raise ValueError(f"one-hot pitch over {pitch_keys} keys needs {pitch_keys + 2} "
                             f"channels, got {channels}")
        self.d, self.pitch_keys = d, pitch_keys
        self.dense = nn.Linear(self.dense_in, 8 * d * 4)
        self.up = nn.ModuleList([_up1d(8 * d, 4 * d, upsample), _up1d(4 * d, 2 * d, upsample),
                                 _up1d(2 * d, channels, upsample)])
        self._add_embedding()

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(z, labels, (8 * self.d, 4))

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return pitch.activate(x, self.pitch_keys) if self.pitch_keys else torch.tanh(x)


class PianoCritic(_Critic):
    def __init__(self, *, d: int, length: int = PIANO_LENGTH, channels: int = PIANO_CHANNELS,
                 phase_shuffle: int = 2, n_classes: int = 0) -> None:
        super().__init__(n_classes=n_classes)
        self.convs = nn.ModuleList([
            GemmConv1d(channels, 2 * d, 25, stride=4, padding=11),
            GemmConv1d(2 * d, 4 * d, 25, stride=4, padding=11),
            GemmConv1d(4 * d, 8 * d, 25, stride=4, padding=11),
        ])
        self.shuffles = nn.ModuleList([PhaseShuffle(phase_shuffle), PhaseShuffle(phase_shuffle)])
        self._add_head(8 * d * (length // 64))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x), 0.2)
            if i < len(self.shuffles):
                x = self.shuffles[i](x)
        return self._score(x, labels)


class SpecGenerator(_Generator):
    def __init__(self, *, d: int, latent_dim: int = 100, n_classes: int = 0,
                 upsample: str = "transpose", channels: int = 1) -> None:
        super().__init__(latent_dim=latent_dim, n_classes=n_classes)
        self.d = d
        self.dense = nn.Linear(self.dense_in, 16 * d * 4 * 4)
        widths = [16 * d, 8 * d, 4 * d, 2 * d, d, channels]
        self.up = nn.ModuleList([_up2d(a, b, upsample) for a, b in zip(widths[:-1], widths[1:])])
        self._add_embedding()

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(z, labels, (16 * self.d, 4, 4))


class SpecCritic(_Critic):
    def __init__(self, *, d: int, size: int = SPEC_SIZE, n_classes: int = 0,
                 channels: int = 1) -> None:
        super().__init__(n_classes=n_classes)
        widths = [channels, d, 2 * d, 4 * d, 8 * d, 16 * d]
        self.convs = nn.ModuleList([
            nn.Conv2d(a, b, 5, stride=2, padding=2) for a, b in zip(widths[:-1], widths[1:])
        ])
        side = size // 32
        self._add_head(16 * d * side * side)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self._score(x, labels)


def network_shape(family: str, example_shape: Sequence[int]) -> tuple[int, ...]:
    """Manifest example shape -> network layout, checked against what the networks make."""
    shape = tuple(int(s) for s in example_shape)
    if family == "pianogan":
        if shape != (PIANO_LENGTH, PIANO_CHANNELS):
            raise UserError(f"pianogan needs examples of shape [256, 3] (window 256), data has "
                            f"{list(shape)}")
        return (PIANO_CHANNELS, PIANO_LENGTH)
    if family == "spectogan":
        # [128, 128] log magnitudes (one channel) or [C, 128, 128] (complex: C = 2).
        if shape == (SPEC_SIZE, SPEC_SIZE):
            return (1, SPEC_SIZE, SPEC_SIZE)
        if len(shape) == 3 and shape[1:] == (SPEC_SIZE, SPEC_SIZE) and shape[0] >= 1:
            return shape
        raise UserError(f"spectogan needs examples of shape [128, 128] or [C, 128, 128], "
                        f"data has {list(shape)}")
    raise UserError(f"unknown model family '{family}'")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def example_shape_for(family: str, channels: int = 1) -> list[int]:
    """The manifest example shape a family trains on (for param counts and dry runs);
    `channels` 2 for SpectoGAN's complex representation."""
    if family == "pianogan":
        return [PIANO_LENGTH, PIANO_CHANNELS]
    return [SPEC_SIZE, SPEC_SIZE] if channels == 1 else [channels, SPEC_SIZE, SPEC_SIZE]
