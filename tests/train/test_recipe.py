"""The small-budget recipe pieces on their own: EMA with warm-up, DiffAugment."""

import pytest
import torch

from audiogan import builders, wgan
from audiogan.augment import DiffAugment
from audiogan.config import resolve
from audiogan.train.ema import EMA, ema_beta
from audiogan.train.state import RankRandom, TrainState


def test_ema_beta_follows_the_rampup_formula():
    # beta_t = min(decay, 0.5 ** (1 / (rampup * t))): half-life <= rampup * t steps
    assert ema_beta(1, 0.999, 0.05) == pytest.approx(0.5 ** 20)
    assert ema_beta(200, 0.999, 0.05) == pytest.approx(0.5 ** 0.1)        # half-life 10 steps
    h = torch.log(torch.tensor(0.5)) / torch.log(torch.tensor(0.999))     # 692.8 steps
    assert ema_beta(int(h / 0.05) + 50, 0.999, 0.05) == 0.999              # capped by decay
    assert ema_beta(int(h / 0.05) - 50, 0.999, 0.05) < 0.999
    assert ema_beta(1, 0.99, 0.0) == 0.99                                  # no warm-up


def test_ema_update_matches_its_formula():
    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    ema = EMA(g, decay=0.9, rampup=0.5)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), g.parameters()))
    assert not any(p.requires_grad for p in ema.module.parameters())
    old = [p.detach().clone() for p in ema.module.parameters()]
    for step in (1, 2, 40):
        with torch.no_grad():
            for p in g.parameters():
                p.add_(torch.randn_like(p))
        beta = min(0.9, 0.5 ** (1 / (0.5 * step)))
        ema.update(g, step)
        want = [beta * o + (1 - beta) * p.detach() for o, p in zip(old, g.parameters())]
        for got, w in zip(ema.module.parameters(), want):
            torch.testing.assert_close(got, w, rtol=1e-6, atol=1e-6)
        old = [p.detach().clone() for p in ema.module.parameters()]


def test_trainstate_keeps_both_weight_sets_and_an_ema_less_checkpoint_loads_as_generator():
    cfg = resolve("pianogan-cpu", ["model.d=2", "train.ema_decay=0.9"])
    torch.manual_seed(0)
    g, c = builders.build_generator(cfg, [256, 3]), builders.build_critic(cfg, [256, 3])
    opt_g, opt_d = builders.build_optimizers(cfg, g, c)
    ema = builders.build_ema(cfg, g)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.mul_(0.5)
    rng = RankRandom(0, 0, torch.zeros(4, 3, 256), 2, torch.device("cpu"), 100)
    state = TrainState(g, c, opt_g, opt_d, rng, ema=ema.module).state_dict([rng.state_dict()])
    assert not torch.equal(state["ema"]["dense.weight"], state["generator"]["dense.weight"])
    ema2 = builders.build_ema(cfg, builders.build_generator(cfg, [256, 3]))
    fresh = TrainState(builders.build_generator(cfg, [256, 3]),
                       builders.build_critic(cfg, [256, 3]), *builders.build_optimizers(cfg, g, c),
                       rng, ema=ema2.module)
    fresh.load_state_dict(state, 0, 1)
    assert torch.equal(ema2.module.dense.weight, ema.module.dense.weight)
    fresh.load_state_dict(dict(state, ema=None), 0, 1)          # EMA off when it was saved
    assert torch.equal(ema2.module.dense.weight, g.dense.weight)
    del state["ema"]                                             # from before EMA existed
    fresh.load_state_dict(state, 0, 1)
    assert torch.equal(ema2.module.dense.weight, g.dense.weight)
    assert builders.build_ema(resolve("pianogan-cpu"), g) is None


def _aug(ops, seed=0):
    return DiffAugment(ops, generator=torch.Generator().manual_seed(seed))


def test_augmentation_is_the_identity_when_off_and_draws_only_from_its_generator():
    x = torch.randn(3, 3, 256)
    assert builders.build_augment(resolve("pianogan-cpu"), torch.Generator()) is None
    assert _aug([])(x) is x
    spec = torch.randn(2, 1, 128, 128)
    before = torch.get_rng_state()
    a = _aug(["shift", "cutout", "mask"], seed=5)(spec)
    assert torch.equal(torch.get_rng_state(), before)           # the global stream untouched
    assert torch.equal(a, _aug(["mask", "cutout", "shift"], seed=5)(spec))  # fixed op order
    with pytest.raises(ValueError, match="unknown"):
        _aug(["flip"])


def test_each_op_does_what_its_docstring_says():
    t = torch.arange(256.0).expand(4, 3, 256)
    shifted = _aug(["shift"], 1)(t)
    ks = set()
    for row in shifted[:, 0]:
        k = int(100 - row[100])                  # interior is a pure shift: row[t] = t - k
        assert abs(k) <= 32 and torch.equal(row[40:-40], t[0, 0, 40 - k:256 - 40 - k])
        assert row[0] == max(0, -k) and row[-1] == min(255, 255 - k)   # the edge repeated
        ks.add(k)
    assert len(ks) > 1                           # one shift per example
    notes = torch.ones(8, 3, 256)
    cut = _aug(["cutout"], 2)(notes)
    zeros = (cut == 0).all(1)                    # all three channels of a span
    assert (zeros.sum(1) == 64).all() and torch.equal(cut == 0, zeros.unsqueeze(1).expand_as(cut))
    spec = torch.ones(8, 1, 128, 128)
    assert ((_aug(["cutout"], 3)(spec) == 0).flatten(1).sum(1) == 64 * 64).all()
    masked = _aug(["mask"], 4)(spec)[:, 0] == 0
    frames, bins = masked.all(2).sum(1), masked.all(1).sum(1)   # fully masked rows / columns
    assert (frames <= 16).all() and (bins <= 16).all() and (frames + bins > 0).any()
    assert torch.equal(masked, masked.all(2, keepdim=True) | masked.all(1, keepdim=True))


@pytest.mark.parametrize("family, ops", [("pianogan-cpu", "shift,cutout"),
                                         ("spectogan-cpu", "shift,cutout,mask")])
def test_the_generator_gets_gradients_through_the_augmentation(family, ops):
    cfg = resolve(family, ["model.d=3", f"train.augment={ops}"])   # d=2: dead ReLUs at init
    shape = [256, 3] if cfg.model.family == "pianogan" else [128, 128]
    torch.manual_seed(0)
    g, c = builders.build_generator(cfg, shape), builders.build_critic(cfg, shape)
    augment = builders.build_augment(cfg, torch.Generator().manual_seed(0))
    x = g(torch.rand(2, 100) * 2 - 1)
    (grad,) = torch.autograd.grad(augment(x).sum(), x)
    assert grad.abs().sum() > 0 and (grad >= 0).all()   # gathers and masks: counts of uses
    assert (grad == 0).any()                              # ... some cut out
    opt_g = torch.optim.SGD(g.parameters(), lr=0.0)
    wgan.generator_step(g, c, opt_g, torch.rand(2, 100) * 2 - 1, augment=augment)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())
    assert g.dense.weight.grad.abs().sum() > 0
