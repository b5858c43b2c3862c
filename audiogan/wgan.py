"""WGAN-GP optimisation steps in plain PyTorch (no Ray): the loop and benchmarks share them.

DDP-safe by construction: the critic sees real, fake and interpolated examples in ONE
forward pass, the gradient penalty is taken with `autograd.grad(create_graph=True)` (which
does not touch `.grad`, so DDP's reducer hooks do not fire), it is added to the critic loss,
and a single `backward()` all-reduces the critic's gradients once.
"""

from __future__ import annotations

import torch
from torch import nn

# What `train_step` returns (the loop reports their means over each interval).
LOSS_KEYS = ("loss/critic", "loss/gp", "loss/wdist", "loss/gen")


def interpolates(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Random points on the lines between real and fake examples, as leaves needing grad."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device,
                       dtype=real.dtype)
    return (alpha * real + (1 - alpha) * fake.detach()).detach().requires_grad_(True)


def gradient_norm(scores: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Per-example ||grad_x D(x)||_2 at `inputs`, differentiable w.r.t. the critic's parameters.

    The one gradient-penalty primitive: WGAN-GP takes E[(norm - 1)^2] on interpolates
    (`critic_step`); an R1 penalty would take E[norm^2] on real examples. `scores` are
    D(inputs) for the examples that need the penalty; `inputs` must require grad.
    `autograd.grad` with create_graph leaves `.grad` alone (DDP's hooks do not fire) and
    keeps the graph for the one backward. The norm is taken in fp32 with autocast off,
    so a bf16/fp16 forward does not round the penalty.
    """
    (grad,) = torch.autograd.grad(scores.float().sum(), inputs, create_graph=True)
    with torch.autocast(device_type=grad.device.type, enabled=False):
        return grad.float().flatten(1).norm(2, dim=1)


def critic_step(critic: nn.Module, generator: nn.Module, opt_critic: torch.optim.Optimizer,
                real: torch.Tensor, z: torch.Tensor, gp_weight: float) -> dict[str, float]:
    """One critic update; returns `loss/critic`, `loss/gp`, `loss/wdist` as floats.

    `generator` only makes fakes (under no_grad): pass the unwrapped module under DDP.
    """
    with torch.no_grad():
        fake = generator(z)
    x_hat = interpolates(real, fake)
    n = real.shape[0]
    scores = critic(torch.cat([real, fake, x_hat]))
    d_real, d_fake, d_hat = scores[:n], scores[n:2 * n], scores[2 * n:]
    # WGAN-GP (Gulrajani et al. 2017): unit gradient norm on random interpolates.
    gp = ((gradient_norm(d_hat, x_hat) - 1.0) ** 2).mean()
    wdist = d_real.mean() - d_fake.mean()
    loss = -wdist + gp_weight * gp
    opt_critic.zero_grad(set_to_none=True)
    loss.backward()
    opt_critic.step()
    return {"loss/critic": loss.item(), "loss/gp": gp.item(), "loss/wdist": wdist.item()}


def generator_step(generator: nn.Module, critic: nn.Module, opt_generator: torch.optim.Optimizer,
                   z: torch.Tensor) -> dict[str, float]:
    """One generator update; returns `loss/gen`.

    `critic` only scores (its gradients are discarded by the next critic step's zero_grad):
    pass the unwrapped module under DDP so its reducer is not involved.
    """
    loss = -critic(generator(z)).mean()
    opt_generator.zero_grad(set_to_none=True)
    loss.backward()
    opt_generator.step()
    return {"loss/gen": loss.item()}


def train_step(generator: nn.Module, critic: nn.Module, opt_generator: torch.optim.Optimizer,
               opt_critic: torch.optim.Optimizer, next_real, next_z, n_critic: int,
               gp_weight: float, generator_raw: nn.Module | None = None,
               critic_raw: nn.Module | None = None) -> dict[str, float]:
    """`n_critic` critic updates then one generator update (= one step); mean critic losses.

    `next_real()` / `next_z()` return the next batch; `*_raw` are the unwrapped modules
    (the same as the wrapped ones without DDP).
    """
    generator_raw = generator_raw or generator
    critic_raw = critic_raw or critic
    sums = {"loss/critic": 0.0, "loss/gp": 0.0, "loss/wdist": 0.0}
    for _ in range(n_critic):
        out = critic_step(critic, generator_raw, opt_critic, next_real(), next_z(), gp_weight)
        for k, v in out.items():
            sums[k] += v
    metrics = {k: v / n_critic for k, v in sums.items()}
    metrics.update(generator_step(generator, critic_raw, opt_generator, next_z()))
    return metrics
