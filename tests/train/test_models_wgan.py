"""Model shapes, phase shuffle, gradient penalty (analytic), the pure steps."""

import pytest
import torch
from torch import nn

from audiogan import wgan
from audiogan.config import PRESETS, resolve
from audiogan.errors import UserError
from audiogan.builders import build_critic, build_generator
from audiogan.models import (PhaseShuffle, count_params,
                             example_shape_for, phase_shift)


@pytest.mark.parametrize("preset", PRESETS)
def test_output_shapes_all_presets(preset):
    cfg = resolve(preset, ["model.d=2"])
    shape = example_shape_for(cfg.model.family)
    g, d = build_generator(cfg, shape), build_critic(cfg, shape)
    out = g(torch.rand(3, 100) * 2 - 1)
    want = (3, 3, 256) if cfg.model.family == "pianogan" else (3, 1, 128, 128)
    assert out.shape == want
    assert out.abs().max() <= 1
    assert d(out).shape == (3,)


def test_real_preset_parameter_counts_follow_the_architecture():
    # PianoGAN generator at width d: dense 100 -> 32d, three ConvT1d k25 (8d->4d->2d->3).
    def piano_g(d):
        return (100 * 32 * d + 32 * d) + (8 * d * 4 * d * 25 + 4 * d) + \
            (4 * d * 2 * d * 25 + 2 * d) + (2 * d * 3 * 25 + 3)
    for preset in PRESETS:
        cfg = resolve(preset)
        shape = example_shape_for(cfg.model.family)
        n_g = count_params(build_generator(cfg, shape))
        n_d = count_params(build_critic(cfg, shape))
        assert n_g > 0 and n_d > 0
        if cfg.model.family == "pianogan":
            assert n_g == piano_g(cfg.model.d)


def test_shape_from_manifest_is_checked():
    cfg = resolve("pianogan-cpu")
    with pytest.raises(UserError, match=r"\[256, 3\]"):
        build_generator(cfg, [128, 3])


def test_phase_shuffle_shifts_at_most_n_and_keeps_length():
    x = torch.arange(40.0).repeat(2, 3, 1)  # [2, 3, 40]
    ps = PhaseShuffle(2).train()
    seen = set()
    torch.manual_seed(0)
    for _ in range(60):
        y = ps(x)
        assert y.shape == x.shape
        # interior is a pure shift: y[t] = x[t - k]
        k = int(x[0, 0, 10] - y[0, 0, 10])
        assert abs(k) <= 2
        assert torch.equal(y[..., 2:-2], x[..., 2 - k:40 - 2 - k])
        seen.add(k)
    assert seen == {-2, -1, 0, 1, 2}
    # reflection at the borders
    assert torch.equal(phase_shift(x, 2)[0, 0, :3], torch.tensor([2.0, 1.0, 0.0]))
    assert torch.equal(ps.eval()(x), x)


class Linear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x.flatten(1) @ self.w


def test_gradient_penalty_equals_analytic_value_for_linear_critic():
    torch.manual_seed(0)
    w = torch.randn(3 * 16)
    critic = Linear(w.clone())
    real, fake = torch.randn(5, 3, 16), torch.randn(5, 3, 16)
    gp = wgan.gradient_penalty(critic, real, fake)
    expected = (w.norm() - 1) ** 2   # grad of w.x is w everywhere
    assert torch.allclose(gp, expected, rtol=1e-5)
    gp.backward()   # differentiable w.r.t. the critic: d/dw (||w||-1)^2 = 2(||w||-1) w/||w||
    assert torch.allclose(critic.w.grad, 2 * (w.norm() - 1) * w / w.norm(), rtol=1e-4)


def test_critic_step_penalty_matches_and_steps_return_floats():
    torch.manual_seed(0)
    w = torch.randn(3 * 256) * 0.1
    critic = Linear(w.clone())
    cfg = resolve("pianogan-cpu", ["model.d=2"])
    g = build_generator(cfg, [256, 3])
    opt_d = torch.optim.SGD(critic.parameters(), lr=0.0)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    out = wgan.critic_step(critic, g, opt_d, torch.rand(4, 3, 256) * 2 - 1,
                           torch.rand(4, 100) * 2 - 1, 10.0)
    assert set(out) == {"loss/critic", "loss/gp", "loss/wdist"}
    assert all(isinstance(v, float) for v in out.values())
    assert out["loss/gp"] == pytest.approx(float((w.norm() - 1) ** 2), rel=1e-5)
    assert out["loss/critic"] == pytest.approx(-out["loss/wdist"] + 10 * out["loss/gp"], rel=1e-5)
    before = [p.clone() for p in g.parameters()]
    gen = wgan.generator_step(g, critic, opt_g, torch.rand(4, 100) * 2 - 1)
    assert isinstance(gen["loss/gen"], float)
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters()))
