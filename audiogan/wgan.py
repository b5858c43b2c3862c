"""The GAN optimisation steps in plain PyTorch (no Ray): the loop and benchmarks share them.

Two losses (`LossSpec.kind`, from `loss.kind`):
  wgan-gp  WGAN-GP (Gulrajani et al. 2017): critic -E[D(real)] + E[D(fake)] + gp_weight *
           E[(||grad D(x_hat)|| - 1)^2] on random interpolates x_hat; generator -E[D(G(z))].
  r1       the non-saturating loss with an R1 penalty (Mescheder et al. 2018): critic
           E[softplus(-D(real))] + E[softplus(D(fake))] + r1_weight / 2 * E||grad D(real)||^2;
           generator E[softplus(-D(G(z)))].
           Lazy R1 (StyleGAN2, `r1_every` = k > 1): the penalty is taken on every k-th critic
           update only (counted over the run, so a resume keeps the schedule), weighted by
           k, so its mean pull per update is unchanged at about 1/k of its cost.
Reported: `loss/critic` (the whole critic loss), `loss/gen`, and the unweighted penalty
`loss/gp` with `loss/wdist` (wgan-gp) or `loss/r1` (r1): `LOSS_KEYS[kind]`. Under lazy R1,
`loss/r1` is the mean over the updates that took it, and a step without one omits it.

DDP-safe by construction: the critic sees every example it needs (real, fake and, for
WGAN-GP, the interpolates) in ONE forward pass, the penalty is taken with
`autograd.grad(create_graph=True)` (which does not touch `.grad`, so DDP's reducer hooks
do not fire), it is added to the critic loss, and a single `backward()` all-reduces the
critic's gradients once.

Conditional networks (`n_classes > 0`) get label indices: real examples carry their own,
fakes are made for labels drawn by the caller (`next_labels`), and an interpolate takes its
real end's label (the penalty then keeps each class's critic D(., y) smooth along lines
from that class's data). With `augment` (audiogan.augment), every example the critic
scores -- real and fake, in both steps -- is augmented first; the penalties are taken at
the augmented inputs, which is what the critic sees.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Augment = Callable[[torch.Tensor], torch.Tensor]
Labels = torch.Tensor | None
Scaler = torch.amp.GradScaler | None

# What `train_step` returns per loss kind (the loop reports their means over each interval).
LOSS_KEYS = {"wgan-gp": ("loss/critic", "loss/gp", "loss/wdist", "loss/gen"),
             "r1": ("loss/critic", "loss/r1", "loss/gen")}
# What to change when a loss goes non-finite (the loop's one-line error).
STABILISE = {"wgan-gp": "raise loss.gp_weight", "r1": "raise loss.r1_weight"}


@dataclass(frozen=True)
class LossSpec:
    """The loss section of a config as plain values (`audiogan.builders.build_loss_spec`)."""

    kind: str = "wgan-gp"
    gp_weight: float = 10.0
    r1_weight: float = 10.0
    n_critic: int = 5
    r1_every: int = 1

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KEYS:
            raise ValueError(f"unknown loss kind '{self.kind}' (known: {', '.join(LOSS_KEYS)})")
        if self.r1_every < 1:
            raise ValueError(f"r1_every must be >= 1, got {self.r1_every}")

    def regularises(self, critic_update: int) -> bool:
        """Whether critic update number `critic_update` (0-based, over the run) takes the
        penalty: always under wgan-gp, every `r1_every`-th under r1."""
        return self.kind != "r1" or critic_update % self.r1_every == 0

    @property
    def keys(self) -> tuple[str, ...]:
        return LOSS_KEYS[self.kind]


@dataclass(frozen=True)
class Precision:
    """How the networks run (`compute.precision`, built by `audiogan.builders`): under
    autocast to `dtype` (bf16 or fp16), or in fp32 (`dtype` None). The loss arithmetic
    and the penalty's gradient norm stay in fp32 (`gradient_norm`); fp16 also scales its
    losses (`torch.amp.GradScaler`, one per optimiser, passed to the steps)."""

    dtype: torch.dtype | None = None
    device_type: str = "cpu"

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


def _backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: Scaler) -> None:
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)   # skipped (and the scale lowered) when a gradient overflowed
    scaler.update()


def interpolates(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Random points on the lines between real and fake examples, as leaves needing grad."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device,
                       dtype=real.dtype)
    return (alpha * real + (1 - alpha) * fake.detach()).detach().requires_grad_(True)


def gradient_norm(scores: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Per-example ||grad_x D(x)||_2 at `inputs`, differentiable w.r.t. the critic's parameters.

    The one gradient-penalty primitive: WGAN-GP takes E[(norm - 1)^2] on interpolates, R1
    takes E[norm^2] on real examples (`critic_step`). `scores` are D(inputs) for the
    examples that need the penalty; `inputs` must require grad.
    `autograd.grad` with create_graph leaves `.grad` alone (DDP's hooks do not fire) and
    keeps the graph for the one backward. Mixed precision: the critic's forward (and so the
    backward through it) may run in bf16/fp16, but the gradient w.r.t. the fp32 inputs is
    upcast and the norm taken in fp32 with autocast off, so the penalty itself is never
    rounded to half precision. The input gradient is not loss-scaled under fp16 (unlike the
    parameter gradients): both penalties hold it near norm 1, far from fp16's underflow,
    whereas a scaled one overflows in the first steps and turns the penalty into inf.
    """
    (grad,) = torch.autograd.grad(scores.float().sum(), inputs, create_graph=True)
    with torch.autocast(device_type=grad.device.type, enabled=False):
        return grad.float().flatten(1).norm(2, dim=1)


def _run(net: nn.Module, x: torch.Tensor, labels: Labels) -> torch.Tensor:
    """net(x), or net(x, labels) for a conditional network."""
    return net(x) if labels is None else net(x, labels)


def _cat(*labels: Labels) -> Labels:
    return None if labels[0] is None else torch.cat(labels)  # type: ignore[arg-type]


def critic_step(critic: nn.Module, generator: nn.Module, opt_critic: torch.optim.Optimizer,
                real: torch.Tensor, z: torch.Tensor, loss: LossSpec, *,
                real_labels: Labels = None, fake_labels: Labels = None,
                augment: Augment | None = None, precision: Precision = Precision(),
                scaler: Scaler = None, regularise: bool = True) -> dict[str, float]:
    """One critic update; returns `loss/critic` and the kind's penalty terms as floats.

    `generator` only makes fakes (under no_grad): pass the unwrapped module under DDP.
    `regularise` False (lazy R1's updates between penalties) skips the R1 term, whose
    weight is then `r1_weight * r1_every` on the updates that take it.
    """
    with torch.no_grad(), precision.autocast():
        fake = _run(generator, z, fake_labels).float()
    if augment is not None:
        real, fake = augment(real), augment(fake.detach())
    n = real.shape[0]
    if loss.kind == "r1":
        real = real.detach().requires_grad_(regularise)
        with precision.autocast():
            scores = _run(critic, torch.cat([real, fake]), _cat(real_labels, fake_labels))
        scores = scores.float()
        d_real, d_fake = scores[:n], scores[n:]
        total = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        terms = {}
        if regularise:
            r1 = gradient_norm(d_real, real).pow(2).mean()
            total = total + loss.r1_weight * loss.r1_every / 2 * r1
            terms = {"loss/r1": r1}
    else:
        x_hat = interpolates(real, fake)
        with precision.autocast():
            scores = _run(critic, torch.cat([real, fake, x_hat]),
                          _cat(real_labels, fake_labels, real_labels))
        scores = scores.float()
        d_real, d_fake, d_hat = scores[:n], scores[n:2 * n], scores[2 * n:]
        # WGAN-GP (Gulrajani et al. 2017): unit gradient norm on random interpolates.
        gp = ((gradient_norm(d_hat, x_hat) - 1.0) ** 2).mean()
        wdist = d_real.mean() - d_fake.mean()
        total = -wdist + loss.gp_weight * gp
        terms = {"loss/gp": gp, "loss/wdist": wdist}
    _backward_step(total, opt_critic, scaler)
    return {"loss/critic": total.item(), **{k: v.item() for k, v in terms.items()}}


def generator_step(generator: nn.Module, critic: nn.Module, opt_generator: torch.optim.Optimizer,
                   z: torch.Tensor, loss: LossSpec = LossSpec(), *, labels: Labels = None,
                   augment: Augment | None = None, precision: Precision = Precision(),
                   scaler: Scaler = None) -> dict[str, float]:
    """One generator update; returns `loss/gen`.

    `critic` only scores (its gradients are discarded by the next critic step's zero_grad):
    pass the unwrapped module under DDP so its reducer is not involved.
    """
    with precision.autocast():
        fake = _run(generator, z, labels)
        if augment is not None:
            fake = augment(fake)
        scores = _run(critic, fake, labels).float()
    value = F.softplus(-scores).mean() if loss.kind == "r1" else -scores.mean()
    _backward_step(value, opt_generator, scaler)
    return {"loss/gen": value.item()}


def train_step(generator: nn.Module, critic: nn.Module, opt_generator: torch.optim.Optimizer,
               opt_critic: torch.optim.Optimizer,
               next_real: Callable[[], tuple[torch.Tensor, Labels]],
               next_z: Callable[[], torch.Tensor], loss: LossSpec, *,
               generator_raw: nn.Module | None = None, critic_raw: nn.Module | None = None,
               next_labels: Callable[[], torch.Tensor] | None = None,
               augment: Augment | None = None, precision: Precision = Precision(),
               scalers: tuple[Scaler, Scaler] = (None, None),
               critic_updates_done: int = 0) -> dict[str, float]:
    """`loss.n_critic` critic updates then one generator update (= one step); mean critic
    losses (each over the updates that reported it) and the generator's.

    `critic_updates_done` (the run's critic updates so far) places lazy R1's penalties.

    `next_real()` returns the next real batch and its labels (None when unconditional),
    `next_z()` the next latents, `next_labels()` (conditional only) the labels of the next
    fakes; they are called in that order, once per critic update, then `next_z` and
    `next_labels` once for the generator. `*_raw` are the unwrapped modules (the same as
    the wrapped ones without DDP). `scalers` are fp16's (critic's, generator's).
    """
    # `is None`, not `or`: a compiled module (torch.compile) refuses truth testing.
    generator_raw = generator if generator_raw is None else generator_raw
    critic_raw = critic if critic_raw is None else critic_raw
    critic_keys = [k for k in loss.keys if k != "loss/gen"]
    sums, counts = dict.fromkeys(critic_keys, 0.0), dict.fromkeys(critic_keys, 0)
    for i in range(loss.n_critic):
        real, real_labels = next_real()
        z = next_z()
        fake_labels = next_labels() if next_labels is not None else None
        out = critic_step(critic, generator_raw, opt_critic, real, z, loss,
                          real_labels=real_labels, fake_labels=fake_labels, augment=augment,
                          precision=precision, scaler=scalers[0],
                          regularise=loss.regularises(critic_updates_done + i))
        for k in critic_keys:
            if k in out:
                sums[k] += out[k]
                counts[k] += 1
    metrics = {k: sums[k] / counts[k] for k in critic_keys if counts[k]}
    z = next_z()
    labels = next_labels() if next_labels is not None else None
    metrics.update(generator_step(generator, critic_raw, opt_generator, z, loss, labels=labels,
                                  augment=augment, precision=precision, scaler=scalers[1]))
    return metrics
