"""PianoGAN's one-hot pitch (model.pitch onehot): exact encode/decode, the generator's
softmax head, and a run of the loop on it whose metrics, checkpoint and samples decode."""

import numpy as np
import pytest
import torch

from audiogan import builders
from audiogan.cluster.session import LocalSession
from audiogan.config import DataConfig, resolve
from audiogan.data import scaling, shards
from audiogan.errors import UserError
from audiogan.pitch import OneHotPitch
from audiogan.train import checkpoint as ckpt
from audiogan.train.loop import train_loop
from tests.fixtures import make_dataset

SCALING = scaling.note_constants(DataConfig())
META = {"kind": "notes", "note_scaling": SCALING}


def _notes(rng: np.random.Generator) -> np.ndarray:
    """Every piano key once, with random times: raw [1, 88, 3]."""
    raw = np.zeros((1, 88, 3))
    raw[0, :, 0] = rng.permutation(np.arange(21, 109))
    raw[0, :, 1:] = rng.exponential(0.2, (88, 2))
    return raw


def test_encode_then_decode_gives_back_every_key_and_the_times_exactly():
    raw = _notes(np.random.default_rng(0))
    x = torch.from_numpy(shards.to_network(raw, META))                     # [1, 3, 88]
    codec = OneHotPitch.from_scaling(SCALING)
    y = codec.encode(x)
    assert y.shape == (1, 90, 88)
    assert torch.equal(y[:, :88].sum(1), torch.ones(1, 88))                # one key each
    assert torch.equal(y[:, 88:], x[:, 1:])
    back = shards.from_network(y.numpy(), META)                            # argmax decode
    np.testing.assert_array_equal(back[..., 0], raw[..., 0])
    np.testing.assert_array_equal(back, shards.from_network(x.numpy(), META))
    torch.testing.assert_close(codec.expected(y), x)                       # soft = hard here


def test_generator_ends_in_a_distribution_over_keys_and_the_critic_reads_it():
    cfg = resolve("pianogan-cpu", ["model.d=2", "model.pitch=onehot"])
    torch.manual_seed(0)
    g = builders.build_generator(cfg, [256, 3])
    critic = builders.build_critic(cfg, [256, 3])
    out = g(torch.rand(4, 100) * 2 - 1)
    assert out.shape == (4, 90, 256)
    torch.testing.assert_close(out[:, :88].sum(1), torch.ones(4, 256))
    assert out[:, :88].min() >= 0 and out[:, 88:].abs().max() <= 1
    assert critic(out).shape == (4,)
    notes = shards.from_network(out.detach().numpy(), META)
    want = out[:, :88].argmax(1).numpy() + 21
    np.testing.assert_array_equal(notes[..., 0], want)
    with pytest.raises(UserError, match="model.pitch=onehot is a pianogan option"):
        resolve("spectogan-cpu", ["model.pitch=onehot"])


def test_a_one_hot_run_trains_evaluates_and_its_checkpoint_samples_notes(tmp_path):
    data = make_dataset(tmp_path / "data", "notes", n_train=8, n_validation=4, n_test=4)
    cfg = resolve("pianogan-cpu", ["model.d=2", "optim.batch_size=2", "train.eval_every=2",
                                   "train.report_every=1", "metrics.n_samples=8",
                                   "metrics.ndb_k=2", "train.total_steps=2",
                                   "model.pitch=onehot"])
    session = LocalSession(checkpoint_root=str(tmp_path / "ckpts"))
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session)
    last = session.reports[-1]
    assert np.isfinite(last["loss/critic"]) and 0 <= last["eval/ndb"] <= 1
    assert 0 < last["eval/pc_entropy"] <= np.log2(12) + 1e-9
    generator, loaded_cfg, meta = ckpt.load_generator(session.checkpoints[-1])
    assert loaded_cfg.model.pitch == "onehot"
    with torch.no_grad():
        out = generator(torch.zeros(2, 100)).numpy()
    notes = shards.from_network(out, meta)
    assert notes.shape == (2, 256, 3) and set(np.unique(notes[..., 0])) <= set(range(21, 109))
