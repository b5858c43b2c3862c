"""compute.precision / channels_last / compile: each precision trains with finite losses and
an fp32 penalty (also under 2-rank DDP), NHWC gives the default layout's outputs, the
compiled generator matches eager, and fp16 without a GPU is refused."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp

from audiogan import builders, wgan
from audiogan.cluster.session import LocalSession
from audiogan.config import resolve
from audiogan.errors import UserError
from audiogan.train.loop import train_loop
from tests.fixtures import make_dataset

TINY = ["model.d=2", "optim.batch_size=4", "metrics.n_samples=8", "metrics.ndb_k=2",
        "train.report_every=1", "train.eval_every=100"]


@pytest.fixture
def norms_dtypes(monkeypatch):
    """The dtype of every gradient norm the steps take (the penalty's)."""
    seen = []
    real_fn = wgan.gradient_norm

    def spy(scores, inputs):
        out = real_fn(scores, inputs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(wgan, "gradient_norm", spy)
    return seen


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("kind", ["wgan-gp", "r1"])
def test_each_precision_trains_with_finite_losses_and_an_fp32_penalty(
        precision, kind, norms_dtypes, tmp_path):
    data = make_dataset(tmp_path / "d", "spectrogram", n_train=4, n_validation=2, n_test=2)
    cfg = resolve("spectogan-cpu", TINY + ["train.total_steps=2", "loss.n_critic=1",
                                           f"compute.precision={precision}",
                                           f"loss.kind={kind}"])
    session = LocalSession()
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session)
    losses = [v for r in session.reports for k, v in r.items() if k.startswith("loss/")]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert norms_dtypes and set(norms_dtypes) == {torch.float32}


def test_fp16_steps_scale_the_loss_not_the_penalty(norms_dtypes):
    """The fp16 path (a GPU feature) on CPU autocast: a GradScaler scales the loss, not the
    penalty's input gradient, so the penalty equals its fp32 value to fp16 accuracy, and
    the critic's step is the fp32 step's."""
    cfg = resolve("pianogan-cpu", ["model.d=2"])
    torch.manual_seed(0)
    critic = builders.build_critic(cfg, [256, 3])
    gen = builders.build_generator(cfg, [256, 3])
    real, z = torch.rand(4, 3, 256) * 2 - 1, torch.rand(4, 100) * 2 - 1
    outs = {}
    for name, precision, scaler in (
            ("fp32", wgan.Precision(), None),
            ("fp16", wgan.Precision(torch.float16, "cpu"), torch.amp.GradScaler("cpu"))):
        c = builders.build_critic(cfg, [256, 3])
        c.load_state_dict(critic.state_dict())
        c.eval()  # no phase shuffle: both runs see the same critic
        opt = torch.optim.SGD(c.parameters(), lr=1e-3)
        torch.manual_seed(1)  # the same interpolates
        outs[name] = wgan.critic_step(c, gen, opt, real, z, wgan.LossSpec(),
                                      precision=precision, scaler=scaler)
        outs[name]["weight"] = c.out.weight.detach().clone()
    assert outs["fp16"]["loss/gp"] == pytest.approx(outs["fp32"]["loss/gp"], rel=0.05)
    torch.testing.assert_close(outs["fp16"]["weight"], outs["fp32"]["weight"], rtol=0, atol=1e-4)
    assert not torch.equal(outs["fp32"]["weight"], critic.out.weight)   # a step was taken
    assert set(norms_dtypes) == {torch.float32}


def test_fp16_without_a_gpu_is_a_one_line_error():
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        resolve("spectogan-cpu", ["compute.precision=fp16"])
    resolve("spectogan", ["compute.precision=fp16", "compute.gpu=true"])  # fine on a GPU run
    with pytest.raises(UserError, match="channels_last applies to SpectoGAN"):
        resolve("pianogan-cpu", ["compute.channels_last=true"])


def test_channels_last_spectogan_gives_the_default_layouts_outputs():
    base = resolve("spectogan-cpu", ["model.d=2", "compute.channels_last=false"])
    nhwc = base.override({"compute.channels_last": True})
    z = torch.rand(3, 100) * 2 - 1
    torch.manual_seed(0)
    g, c = builders.build_generator(base, [128, 128]), builders.build_critic(base, [128, 128])
    torch.manual_seed(0)
    g2, c2 = builders.build_generator(nhwc, [128, 128]), builders.build_critic(nhwc, [128, 128])
    assert next(p for p in g2.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last)
    with torch.no_grad():
        x, x2 = g(z), g2(z)
        torch.testing.assert_close(x2, x, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c2(x2.contiguous(memory_format=torch.channels_last)), c(x),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_compiled_generator_matches_eager():
    cfg = resolve("pianogan-cpu", ["model.d=2", "compute.compile=true"])
    torch.manual_seed(0)
    g, c = builders.build_generator(cfg, [256, 3]), builders.build_critic(cfg, [256, 3])
    g_step, g_fakes, c_for_g = builders.compile_for_steps(cfg, g, g, c)
    assert g_step is not g and c_for_g is not c
    z = torch.rand(4, 100) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g_fakes(z), g(z), rtol=1e-5, atol=1e-6)


def test_a_step_runs_through_the_compiled_modules(monkeypatch):
    """The step's wiring with compiled modules (the critic's own step eager); the cheap
    aot_eager backend: numerics are the test above's."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m: real_compile(m, backend="aot_eager"))
    cfg = resolve("pianogan-cpu", ["model.d=2", "compute.compile=true"])
    torch.manual_seed(0)
    g, c = builders.build_generator(cfg, [256, 3]), builders.build_critic(cfg, [256, 3])
    g_step, g_fakes, c_for_g = builders.compile_for_steps(cfg, g, g, c)
    z = torch.rand(4, 100) * 2 - 1
    opt_g, opt_c = builders.build_optimizers(cfg, g, c)
    x = torch.rand(8, 3, 256) * 2 - 1
    out = wgan.train_step(g_step, c, opt_g, opt_c, lambda: (x[:4], None), lambda: z,
                          wgan.LossSpec(n_critic=1), generator_raw=g_fakes, critic_raw=c_for_g)
    assert all(torch.isfinite(torch.tensor(list(out.values()))))


def test_bf16_under_two_rank_ddp_keeps_replicas_identical(tmp_path):
    data = make_dataset(tmp_path / "d", "notes", n_train=8)
    mp.start_processes(_rank_dump_main, args=(str(tmp_path), data), nprocs=2,
                       start_method="spawn")
    r0 = torch.load(tmp_path / "params" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "params" / "rank1.pt", weights_only=True)
    assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0)


def _rank_dump_main(rank: int, root: str, data: str) -> None:
    import torch.distributed as dist

    from audiogan.cluster.hooks import FaultHooks

    dist.init_process_group("gloo", init_method=f"file://{root}/store", rank=rank, world_size=2)
    try:
        session = LocalSession()
        session.world_rank, session.world_size = rank, 2
        cfg = resolve("pianogan-cpu", TINY + ["train.total_steps=3", "compute.precision=bf16"])
        train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session,
                   hooks=FaultHooks(param_dump_dir=os.path.join(root, "params")))
        losses = [v for r in session.reports for k, v in r.items() if k.startswith("loss/")]
        assert all(torch.isfinite(torch.tensor(losses))), losses
    finally:
        dist.destroy_process_group()
