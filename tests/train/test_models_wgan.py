"""Model shapes, phase shuffle, gradient penalty (analytic), the pure steps; conditioning,
nearest upsampling and R1 (issue 16)."""

import dataclasses
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audiogan import wgan
from audiogan.config import PRESETS, resolve
from audiogan.errors import UserError
from audiogan.builders import build_critic, build_generator
from audiogan.models import (PhaseShuffle, count_params,
                             example_shape_for, phase_shift)


def _channels(cfg):
    return 2 if cfg.data.representation == "complex" else 1


@pytest.mark.parametrize("preset", PRESETS)
def test_output_shapes_all_presets(preset):
    cfg = resolve(preset, ["model.d=2"])
    shape = example_shape_for(cfg.model.family, _channels(cfg))
    g, d = build_generator(cfg, shape), build_critic(cfg, shape)
    out = g(torch.rand(3, 100) * 2 - 1)
    want = (3, 3, 256) if cfg.model.family == "pianogan" else (3, _channels(cfg), 128, 128)
    assert out.shape == want
    assert out.abs().max() <= 1
    assert d(out).shape == (3,)


# Closed-form parameter counts from the architecture in audiogan/models.py's docstring
# (every layer has a bias): a conv or dense layer a -> b with kernel k has a*b*k + b.
def _layer(a, b, k=1):
    return a * b * k + b


def piano_generator_params(d, latent=100):
    # dense z -> [8d, 4], three ConvT1d k25: 8d -> 4d -> 2d -> 3
    return _layer(latent, 8 * d * 4) + _layer(8 * d, 4 * d, 25) + _layer(4 * d, 2 * d, 25) + \
        _layer(2 * d, 3, 25)


def piano_critic_params(d):
    # Conv1d k25: 3 -> 2d -> 4d -> 8d (length 4), dense 8d*4 -> 1
    return _layer(3, 2 * d, 25) + _layer(2 * d, 4 * d, 25) + _layer(4 * d, 8 * d, 25) + \
        _layer(8 * d * 4, 1)


def spec_generator_params(d, latent=100, channels=1):
    # dense z -> [16d, 4, 4], five ConvT2d 5x5: 16d -> 8d -> 4d -> 2d -> d -> C
    widths = [16 * d, 8 * d, 4 * d, 2 * d, d, channels]
    return _layer(latent, 16 * d * 4 * 4) + sum(_layer(a, b, 25) for a, b in zip(widths, widths[1:]))


def spec_critic_params(d, channels=1):
    # Conv2d 5x5: C -> d -> 2d -> 4d -> 8d -> 16d (4x4), dense 16d*4*4 -> 1
    widths = [channels, d, 2 * d, 4 * d, 8 * d, 16 * d]
    return sum(_layer(a, b, 25) for a, b in zip(widths, widths[1:])) + _layer(16 * d * 4 * 4, 1)


CLOSED_FORM = {"pianogan": (piano_generator_params, piano_critic_params),
               "spectogan": (spec_generator_params, spec_critic_params)}
# README.md's table (preset: d, generator params, critic params).
README_COUNTS = {"pianogan": (64, 4_312_835, 4_108_545), "spectogan": (64, 19_065_345, 17_427_969),
                 "pianogan-cpu": (8, 91_107, 65_569), "spectogan-cpu": (8, 479_169, 274_497),
                 "spectogan-complex": (64, 19_066_946, 17_429_569),
                 "spectogan-complex-cpu": (8, 479_370, 274_697)}


@pytest.mark.parametrize("family", ["pianogan", "spectogan"])
@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_parameter_counts_equal_the_closed_form(family, d):
    cfg = resolve(family, [f"model.d={d}"])
    shape = example_shape_for(family)
    want_g, want_d = CLOSED_FORM[family]
    assert count_params(build_generator(cfg, shape)) == want_g(d)
    assert count_params(build_critic(cfg, shape)) == want_d(d)


def test_preset_parameter_counts_match_the_closed_form_and_readme():
    import os
    import re

    assert set(README_COUNTS) == set(PRESETS)
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    for preset, (d, n_g, n_d) in README_COUNTS.items():
        cfg = resolve(preset)
        shape = example_shape_for(cfg.model.family, _channels(cfg))
        want_g, want_d = CLOSED_FORM[cfg.model.family]
        assert cfg.model.d == d
        extra = {"channels": _channels(cfg)} if cfg.model.family == "spectogan" else {}
        assert (want_g(d, **extra), want_d(d, **extra)) == (n_g, n_d)
        assert count_params(build_generator(cfg, shape)) == n_g
        assert count_params(build_critic(cfg, shape)) == n_d
        row = re.search(rf"^\| `{re.escape(preset)}` \| (\d+) \| \d+ \| ([\d,]+) \| ([\d,]+) \|$",
                        readme, re.M)
        assert row, f"README.md has no parameter-count row for {preset}"
        assert (int(row[1]), int(row[2].replace(",", "")), int(row[3].replace(",", ""))) == \
            (d, n_g, n_d)


def _documented_layers(line_start: str) -> list[tuple[str, int]]:
    """("4d", 16) pairs for `width (length)` in models.py's docstring line starting so."""
    import re

    import audiogan.models as models

    line = next(ln for ln in models.__doc__.splitlines() if ln.strip().startswith(line_start))
    return [(w, int(n)) for w, n in re.findall(r"(\d*d|\d+) \((\d+)\)", line)]


def _output_shapes(convs, run) -> list[tuple[int, ...]]:
    shapes = []
    hooks = [c.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for c in convs]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return shapes


def test_models_docstring_lengths_match_a_forward_pass():
    d = 3
    cfg = resolve("pianogan-cpu", [f"model.d={d}"])
    g, c = build_generator(cfg, [256, 3]), build_critic(cfg, [256, 3]).eval()

    def width(w):
        return d * int(w[:-1] or 1) if w.endswith("d") else int(w)

    got_g = _output_shapes(g.up, lambda: g(torch.zeros(2, 100)))
    got_c = _output_shapes(c.convs, lambda: c(torch.zeros(2, 3, 256)))
    doc_g, doc_c = _documented_layers("generator  z[100] -> dense -> [8d, 4]"), \
        _documented_layers("critic     [3, 256]")
    assert len(doc_g) == len(got_g) == 3 and len(doc_c) == len(got_c) == 3
    assert [(width(w), n) for w, n in doc_g] == got_g
    assert [(width(w), n) for w, n in doc_c] == got_c
    # SpectoGAN: the critic ends at 16d (4x4), the generator at [1, 128, 128].
    import audiogan.models as models

    assert "1->d->2d->4d->8d->16d (4x4)" in models.__doc__ and "[1, 128, 128]" in models.__doc__
    cfg = resolve("spectogan-cpu", [f"model.d={d}"])
    g, c = build_generator(cfg, [128, 128]), build_critic(cfg, [128, 128])
    assert _output_shapes(c.convs, lambda: c(torch.zeros(1, 1, 128, 128)))[-1] == (16 * d, 4, 4)
    assert _output_shapes(g.up, lambda: g(torch.zeros(1, 100)))[-1] == (1, 128, 128)


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


GP10 = wgan.LossSpec(kind="wgan-gp", gp_weight=10.0)


class Linear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x.flatten(1) @ self.w


class Fixed(nn.Module):
    """A 'generator' that ignores z and returns the given fakes (known inputs to the critic)."""

    def __init__(self, fake):
        super().__init__()
        self.fake = fake

    def forward(self, z, labels=None):
        return self.fake


def test_critic_step_gp_and_its_gradient_equal_the_analytic_values():
    # D(x) = w.x: grad_x D = w everywhere, so every interpolate's norm is ||w|| and
    # loss/gp = (||w|| - 1)^2. One SGD step (lr 1) moves w by the analytic gradient of
    # -wdist + gp_weight * gp, which only holds if the penalty stays differentiable
    # (create_graph) inside the one backward critic_step runs.
    torch.manual_seed(0)
    w = torch.randn(3 * 16)
    critic = Linear(w.clone())
    real, fake = torch.randn(5, 3, 16), torch.randn(5, 3, 16)
    opt = torch.optim.SGD(critic.parameters(), lr=1.0)
    out = wgan.critic_step(critic, Fixed(fake), opt, real, torch.zeros(5, 100), GP10)
    assert out["loss/gp"] == pytest.approx(float((w.norm() - 1) ** 2), rel=1e-5)
    mean_diff = (real - fake).flatten(1).mean(0)
    assert out["loss/wdist"] == pytest.approx(float(w @ mean_diff), rel=1e-5, abs=1e-6)
    grad = -mean_diff + 10.0 * 2 * (w.norm() - 1) * w / w.norm()
    assert torch.allclose(critic.w.detach(), w - grad, rtol=1e-4, atol=1e-5)


def test_critic_step_runs_the_one_gradient_norm(monkeypatch):
    calls = []
    real_fn = wgan.gradient_norm

    def spy(scores, inputs):
        calls.append(scores.shape[0])
        return real_fn(scores, inputs)

    monkeypatch.setattr(wgan, "gradient_norm", spy)
    critic = Linear(torch.randn(3 * 16))
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)
    wgan.critic_step(critic, Fixed(torch.randn(4, 3, 16)), opt, torch.randn(4, 3, 16),
                     torch.zeros(4, 100), GP10)
    assert calls == [4]   # once, on the interpolates' scores only
    assert not hasattr(wgan, "gradient_penalty") and not hasattr(wgan, "penalty_from_scores")


class Quadratic(nn.Module):
    """D(x) = a/2 ||x||^2: grad_x D = a x, a different known norm per example."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a)))

    def forward(self, x):
        return 0.5 * self.a * x.flatten(1).pow(2).sum(1)


def test_gradient_norm_per_example_differentiable_and_fp32_under_autocast():
    torch.manual_seed(0)
    x = torch.randn(6, 1, 8, 8).requires_grad_(True)
    critic = Quadratic(0.5)
    norm = wgan.gradient_norm(critic(x), x)
    assert norm.shape == (6,) and norm.dtype == torch.float32
    assert torch.allclose(norm, 0.5 * x.detach().flatten(1).norm(dim=1), rtol=1e-5)
    # d/da of sum(norm) = sum ||x|| (the graph reaches the critic's parameters: R1 needs it)
    norm.sum().backward()
    assert critic.a.grad == pytest.approx(float(x.detach().flatten(1).norm(dim=1).sum()), rel=1e-5)
    # Under bf16 autocast the critic runs in bf16, the norm is still returned in fp32.
    lin = Linear(torch.randn(64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = lin(x)
        assert scores.dtype == torch.bfloat16
        norm16 = wgan.gradient_norm(scores, x)
    assert norm16.dtype == torch.float32
    assert torch.allclose(norm16, lin.w.detach().norm().expand(6), rtol=2e-2)


def test_critic_step_penalty_matches_and_steps_return_floats():
    torch.manual_seed(0)
    w = torch.randn(3 * 256) * 0.1
    critic = Linear(w.clone())
    cfg = resolve("pianogan-cpu", ["model.d=2"])
    g = build_generator(cfg, [256, 3])
    opt_d = torch.optim.SGD(critic.parameters(), lr=0.0)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    out = wgan.critic_step(critic, g, opt_d, torch.rand(4, 3, 256) * 2 - 1,
                           torch.rand(4, 100) * 2 - 1, GP10)
    assert set(out) == {"loss/critic", "loss/gp", "loss/wdist"}
    assert all(isinstance(v, float) for v in out.values())
    assert out["loss/gp"] == pytest.approx(float((w.norm() - 1) ** 2), rel=1e-5)
    assert out["loss/critic"] == pytest.approx(-out["loss/wdist"] + 10 * out["loss/gp"], rel=1e-5)
    before = [p.clone() for p in g.parameters()]
    gen = wgan.generator_step(g, critic, opt_g, torch.rand(4, 100) * 2 - 1)
    assert isinstance(gen["loss/gen"], float)
    assert any(not torch.equal(a, b) for a, b in zip(before, g.parameters()))


# -- issue 16: conditioning, nearest upsampling, R1 -------------------------------------------
from audiogan.models import EMBED_DIM, _Critic  # noqa: E402


def _nets(family, n_classes, upsample="transpose", d=2):
    cfg = resolve(family, [f"model.d={d}", f"model.conditional={n_classes > 0}",
                           f"model.upsample={upsample}"])
    shape = example_shape_for(family)
    torch.manual_seed(0)
    return build_generator(cfg, shape, n_classes), build_critic(cfg, shape, n_classes).eval()


@pytest.mark.parametrize("family", ["pianogan", "spectogan"])
@pytest.mark.parametrize("upsample", ["transpose", "nearest"])
def test_labels_change_outputs_and_examples_do_not_depend_on_their_batch(family, upsample):
    g, c = _nets(family, 3, upsample, d=2)
    assert g.n_classes == c.n_classes == 3
    z = (torch.rand(1, 100) * 2 - 1).expand(3, 100)
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        x = g(z, y)
        for i in range(3):
            for j in range(i):
                assert not torch.allclose(x[i], x[j])          # same z, other label
        scores = c(x[:1].expand(3, *x.shape[1:]), y)
        assert len(set(scores.tolist())) == 3                   # same x, other label
        # each example alone equals itself in a batch of mixed labels
        z5, y5 = torch.rand(4, 100) * 2 - 1, torch.tensor([2, 0, 1, 0])
        batch = g(z5, y5)
        scored = c(batch, y5)
        for i in (1, 3):
            torch.testing.assert_close(g(z5[i:i + 1], y5[i:i + 1])[0], batch[i],
                                       atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(c(batch[i:i + 1], y5[i:i + 1])[0], scored[i],
                                       atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="needs labels"):
        g(z)
    with pytest.raises(ValueError, match="takes no labels"):
        _nets(family, 0)[0](z, y)


@pytest.mark.parametrize("family", ["pianogan", "spectogan"])
def test_conditional_and_nearest_parameter_counts(family):
    d, k = 3, 4
    want_g, want_d = CLOSED_FORM[family]
    dense_out = 8 * d * 4 if family == "pianogan" else 16 * d * 16
    features = dense_out  # the critic's flattened features have the generator's dense size
    g, c = _nets(family, k, d=d)
    # + embedding table + its columns of the dense layer; critic: + projection table
    assert count_params(g) == want_g(d) + k * EMBED_DIM + EMBED_DIM * dense_out
    assert count_params(c) == want_d(d) + k * features
    g_nn, c_nn = _nets(family, 0, "nearest", d=d)
    assert (count_params(g_nn), count_params(c_nn)) == (want_g(d), want_d(d))
    out = g_nn(torch.zeros(2, 100))
    assert out.shape == ((2, 3, 256) if family == "pianogan" else (2, 1, 128, 128))
    # unconditional networks keep the paper's parameter names (old checkpoints load)
    assert [n for n, _ in _nets(family, 0)[0].named_parameters()][0] == "dense.weight"
    assert "embed.weight" not in dict(_nets(family, 0)[1].named_parameters())


class LinearProjection(_Critic):
    """The real projection head on a linear body h = x: D(x, y) = (w + v_y).x + b."""

    def __init__(self, features, n_classes):
        super().__init__(n_classes=n_classes)
        self._add_head(features)

    def forward(self, x, labels=None):
        return self._score(x, labels)


def test_gradient_penalty_is_analytic_through_a_projection_critic():
    torch.manual_seed(0)
    critic = LinearProjection(3 * 16, 4)
    w, b, v = critic.out.weight[0].detach(), critic.out.bias.detach(), critic.embed.weight.detach()
    real, fake = torch.randn(6, 3, 16), torch.randn(6, 3, 16)
    y_real, y_fake = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([3, 3, 2, 1, 0, 0])
    opt = torch.optim.SGD(critic.parameters(), lr=0.0)
    out = wgan.critic_step(critic, Fixed(fake), opt, real, torch.zeros(6, 100), GP10,
                           real_labels=y_real, fake_labels=y_fake)
    # grad_x D(x, y) = w + v_y; an interpolate takes its real end's label
    want_gp = ((w + v[y_real]).norm(dim=1) - 1).pow(2).mean()
    want_wdist = ((w + v[y_real]) * real.flatten(1)).sum(1).mean() - \
        ((w + v[y_fake]) * fake.flatten(1)).sum(1).mean()
    assert out["loss/gp"] == pytest.approx(float(want_gp), rel=1e-5)
    assert out["loss/wdist"] == pytest.approx(float(want_wdist), rel=1e-4, abs=1e-5)
    assert torch.equal(b, critic.out.bias.detach())   # lr 0: nothing moved


R1 = wgan.LossSpec(kind="r1", r1_weight=4.0)


def test_r1_and_its_gradient_equal_the_analytic_values_for_a_linear_critic():
    # D(x) = w.x: grad_x D = w, so loss/r1 = ||w||^2 and the critic loss is
    # E softplus(-w.r) + E softplus(w.f) + gamma/2 ||w||^2; one SGD step (lr 1) moves w by
    # its analytic gradient (the penalty stays differentiable inside the one backward).
    torch.manual_seed(0)
    w = torch.randn(3 * 16) * 0.3
    critic = Linear(w.clone())
    real, fake = torch.randn(5, 3, 16), torch.randn(5, 3, 16)
    opt = torch.optim.SGD(critic.parameters(), lr=1.0)
    out = wgan.critic_step(critic, Fixed(fake), opt, real, torch.zeros(5, 100), R1)
    assert set(out) == {"loss/critic", "loss/r1"}
    r, f = real.flatten(1), fake.flatten(1)
    assert out["loss/r1"] == pytest.approx(float(w @ w), rel=1e-5)
    want = F.softplus(-r @ w).mean() + F.softplus(f @ w).mean() + 2.0 * (w @ w)
    assert out["loss/critic"] == pytest.approx(float(want), rel=1e-5)
    grad = (-torch.sigmoid(-r @ w)[:, None] * r).mean(0) + \
        (torch.sigmoid(f @ w)[:, None] * f).mean(0) + 4.0 * w
    assert torch.allclose(critic.w.detach(), w - grad, rtol=1e-4, atol=1e-5)


def test_lazy_r1_takes_the_penalty_every_kth_update_weighted_by_k():
    # r1_every = 3: updates 0, 3, 6 ... take gamma * 3 / 2 ||w||^2 (one SGD step moves w by
    # the analytic gradient with 3 x the penalty); the others take none and omit loss/r1.
    torch.manual_seed(0)
    lazy = dataclasses.replace(R1, r1_every=3)
    assert [lazy.regularises(i) for i in range(7)] == [True, False, False, True, False,
                                                        False, True]
    assert all(R1.regularises(i) and GP10.regularises(i) for i in range(4))
    w = torch.randn(3 * 16) * 0.3
    real, fake = torch.randn(5, 3, 16), torch.randn(5, 3, 16)
    r, f = real.flatten(1), fake.flatten(1)
    data_grad = (-torch.sigmoid(-r @ w)[:, None] * r).mean(0) + \
        (torch.sigmoid(f @ w)[:, None] * f).mean(0)
    for regularise, penalty in ((True, 3 * 4.0), (False, 0.0)):
        critic = Linear(w.clone())
        opt = torch.optim.SGD(critic.parameters(), lr=1.0)
        out = wgan.critic_step(critic, Fixed(fake), opt, real, torch.zeros(5, 100), lazy,
                               regularise=regularise)
        assert set(out) == ({"loss/critic", "loss/r1"} if regularise else {"loss/critic"})
        want = F.softplus(-r @ w).mean() + F.softplus(f @ w).mean() + penalty / 2 * (w @ w)
        assert out["loss/critic"] == pytest.approx(float(want), rel=1e-5)
        assert torch.allclose(critic.w.detach(), w - data_grad - penalty * w, rtol=1e-4,
                              atol=1e-5)
    # train_step places the penalty by the run's update count: with n_critic 2 and 4 updates
    # done, updates 4 and 5 run and neither is a multiple of 3.
    g = build_generator(resolve("pianogan-cpu", ["model.d=2"]), [256, 3])
    critic = Linear(torch.randn(3 * 256) * 0.01)
    opts = [torch.optim.SGD(m.parameters(), lr=0.0) for m in (g, critic)]
    step = functools.partial(wgan.train_step, g, critic, *opts,
                             lambda: (torch.rand(4, 3, 256), None), lambda: torch.zeros(4, 100),
                             dataclasses.replace(lazy, n_critic=2))
    assert "loss/r1" not in step(critic_updates_done=4)
    assert "loss/r1" in step(critic_updates_done=5)   # update 6 takes it


def test_train_step_reports_the_loss_kinds_keys_and_the_nonsaturating_generator_loss():
    torch.manual_seed(0)
    cfg = resolve("pianogan-cpu", ["model.d=2"])
    g = build_generator(cfg, [256, 3])
    critic = Linear(torch.randn(3 * 256) * 0.01)
    opt_g = torch.optim.SGD(g.parameters(), lr=0.0)
    opt_d = torch.optim.SGD(critic.parameters(), lr=0.0)
    z = torch.rand(4, 100) * 2 - 1
    for spec in (R1, GP10):
        out = wgan.train_step(g, critic, opt_g, opt_d, lambda: (torch.rand(4, 3, 256), None),
                              lambda: z, dataclasses.replace(spec, n_critic=2))
        assert set(out) == set(wgan.LOSS_KEYS[spec.kind]) == set(spec.keys)
    with torch.no_grad():
        scores = critic(g(z))
    gen = wgan.generator_step(g, critic, opt_g, z, R1)
    assert gen["loss/gen"] == pytest.approx(float(F.softplus(-scores).mean()), rel=1e-5)


@pytest.mark.parametrize("shape", [(3, 8, 256), (8, 16, 64), (16, 32, 16)])
def test_gemm_conv1d_equals_onednn_through_the_double_backward(shape):
    """audiogan.conv1d's GEMM form gives oneDNN's numbers (to fp32 rounding): outputs, the
    penalty's input gradient and the parameter gradients of a gradient-norm loss."""
    from audiogan.conv1d import GemmConv1d

    c_in, c_out, length = shape
    torch.manual_seed(0)
    conv = GemmConv1d(c_in, c_out, 25, stride=4, padding=11)
    ref = torch.nn.Conv1d(c_in, c_out, 25, stride=4, padding=11)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(3, c_in, length)
    results = []
    for module in (conv, ref):
        xi = x.clone().requires_grad_(True)
        y = module(xi)
        (g,) = torch.autograd.grad((y ** 2).sum(), xi, create_graph=True)
        g.norm().backward()
        results.append((y.detach(), g.detach(), module.weight.grad.clone(), module.bias.grad.clone()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("length", [4, 16])
def test_gemm_conv_transpose1d_equals_onednn(length):
    from audiogan.conv1d import GemmConvTranspose1d

    torch.manual_seed(0)
    conv = GemmConvTranspose1d(16, 8, 25, stride=4, padding=11, output_padding=1)
    ref = torch.nn.ConvTranspose1d(16, 8, 25, stride=4, padding=11, output_padding=1)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(3, 16, length)
    outs = []
    for module in (conv, ref):
        y = module(x)
        (y ** 2).sum().backward()
        outs.append((y.detach(), module.weight.grad.clone()))
    assert outs[0][0].shape == (3, 8, 4 * length)
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
