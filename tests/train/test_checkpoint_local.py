"""Checkpoints (round trip, refusal of bad ones) and the loop without Ray (LocalSession),
including issue 16's recipe (conditioning, R1, EMA, augmentation, nearest upsampling)."""

import math
import os
import pickle
import shutil

import pytest
import torch

from audiogan.cluster.hooks import FaultHooks
from audiogan.config import resolve
from audiogan.errors import UserError
from audiogan.latent import latents_for_seeds
from audiogan.train import checkpoint as ckpt
from audiogan.train.loop import NonFiniteLossError, train_loop
from audiogan.cluster.session import LocalSession
from tests.fixtures import make_dataset

TINY = ["model.d=2", "optim.batch_size=2", "train.eval_every=2", "train.report_every=1",
        "metrics.n_samples=8", "metrics.ndb_k=2"]


@pytest.fixture(scope="module")
def piano_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("piano")
    data = make_dataset(root / "data", "notes", n_train=8, n_validation=4, n_test=4)
    cfg = resolve("pianogan-cpu", TINY + ["train.total_steps=4"])
    session = LocalSession(checkpoint_root=str(root / "ckpts"), log_dir=str(root / "tb"))
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session)
    return root, data, cfg, session


def test_local_run_reports_and_checkpoints(piano_run):
    root, _, cfg, session = piano_run
    steps = [r["progress/step"] for r in session.reports]
    assert steps == [1, 2, 3, 4]
    assert session.reports[-1]["progress/critic_steps"] == 4 * cfg.loss.n_critic
    assert {"loss/critic", "loss/gen", "loss/gp", "loss/wdist", "time/step_s"} <= set(
        session.reports[0])
    assert [os.path.basename(c) for c in session.checkpoints] == [
        "checkpoint_00000002", "checkpoint_00000004"]
    assert os.listdir(root / "tb")  # TensorBoard event file


def test_checkpoint_round_trip_gives_identical_generator_output(piano_run, tmp_path):
    root, data, cfg, session = piano_run
    path = session.checkpoints[-1]
    g, cfg2, meta = ckpt.load_generator(path)
    assert cfg2 == cfg and meta["step"] == 4 and meta["family"] == "pianogan"
    assert "note_scaling" in meta and meta["kind"] == "notes"
    z = latents_for_seeds(range(3), 100)
    # save again from the loaded state, load, compare outputs exactly
    loaded = ckpt.load_checkpoint(path)
    again = ckpt.save_checkpoint(str(tmp_path / "copy"), state=loaded.state, cfg=loaded.cfg,
                                 meta=loaded.meta)
    g2, _, _ = ckpt.load_generator(again)
    with torch.no_grad():
        assert torch.equal(g(z), g2(z))


def test_bad_checkpoints_are_one_line_user_errors(piano_run, tmp_path):
    good = piano_run[3].checkpoints[-1]

    def copy(name):
        dst = tmp_path / name
        shutil.copytree(good, dst)
        return dst

    with pytest.raises(UserError, match="not a directory"):
        ckpt.load_checkpoint(str(tmp_path / "nope"))
    missing = copy("missing")
    os.remove(missing / "meta.json")
    with pytest.raises(UserError, match="no meta.json"):
        ckpt.load_checkpoint(str(missing))
    truncated = copy("truncated")
    blob = (truncated / "model.pt").read_bytes()
    (truncated / "model.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        ckpt.load_checkpoint(str(truncated))
    with pytest.raises(UserError, match="expected spectogan"):
        ckpt.load_checkpoint(good, family="spectogan")


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


def test_pickle_payload_is_refused_and_not_executed(piano_run, tmp_path):
    good = piano_run[3].checkpoints[-1]
    evil = tmp_path / "evil"
    shutil.copytree(good, evil)
    _Payload.marker = str(tmp_path / "pwned")
    state = ckpt.load_checkpoint(good).state
    state["extra"] = _Payload()
    torch.save(state, evil / "model.pt")           # a zip torch file holding code
    with pytest.raises(UserError, match="other than weights"):
        ckpt.load_checkpoint(str(evil))
    with open(evil / "model.pt", "wb") as f:       # a raw pickle
        pickle.dump(_Payload(), f)
    with pytest.raises(UserError):
        ckpt.load_checkpoint(str(evil))
    assert not os.path.exists(_Payload.marker)


def test_resume_continues_from_checkpoint_step(piano_run, tmp_path):
    _, data, cfg, session = piano_run
    more = resolve("pianogan-cpu", TINY + ["train.total_steps=6"])
    s2 = LocalSession(checkpoint_root=str(tmp_path / "ck"), resume_from=session.checkpoints[-1])
    train_loop({"cfg": more.to_dict(), "data": data, "run_dir": None}, session=s2)
    assert [r["progress/step"] for r in s2.reports] == [5, 6]
    assert s2.reports[-1]["progress/critic_steps"] == 6 * more.loss.n_critic


def test_nan_injection_gives_one_clear_error(piano_run):
    _, data, cfg, _ = piano_run
    with pytest.raises(NonFiniteLossError) as info:
        train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None},
                   session=LocalSession(), hooks=FaultHooks(nan_at_step=3))
    msg = str(info.value)
    assert "\n" not in msg and "step 3" in msg and "loss/critic=nan" in msg and "loss/gen=" in msg


def test_spectogan_local_run(tmp_path):
    # a manifest from before per-label counts still trains (unconditionally)
    data = make_dataset(tmp_path / "spec", "spectrogram", n_train=4, n_validation=2, n_test=2,
                        label_counts=False)
    cfg = resolve("spectogan-cpu", TINY + ["train.total_steps=2", "model.d=2"])
    session = LocalSession(checkpoint_root=str(tmp_path / "ck"), log_dir=str(tmp_path / "tb"))
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session)
    g, _, meta = ckpt.load_generator(session.checkpoints[-1])
    assert "normalisation" in meta
    assert g(latents_for_seeds([0], 100)).shape == (1, 1, 128, 128)


def _tensors_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


# Composer labels for conditional PianoGAN runs: train (7 windows) has Chopin 4, Bach 2,
# Liszt 1, so with these keys the classes are Chopin, Bach and other.
COMPOSERS = ["Chopin", "Bach", "Chopin", "Liszt"]
CONDITIONAL = ["model.conditional=true", "data.n_composers=2", "data.min_class_windows=2"]


@pytest.mark.parametrize("recipe", [[], CONDITIONAL + ["train.ema_decay=0.9",
                                                       "train.augment=shift,cutout"]],
                         ids=["paper", "conditional-ema-augment"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, recipe):
    """Everything a checkpoint holds (TrainState) comes back: weights, the EMA weights,
    both Adam states, the step counters, the global torch RNG (phase shuffle,
    interpolates), the latent, fake-label and augmentation streams and the data order with
    its position. Odd batch/data sizes so the position matters."""
    data = make_dataset(tmp_path / "data", "notes", n_train=7, n_validation=4, n_test=4,
                        labels=COMPOSERS)
    cfg = resolve("pianogan-cpu", TINY + recipe + ["optim.batch_size=3",
                                                   "train.total_steps=6"])
    straight = LocalSession(checkpoint_root=str(tmp_path / "a"))
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=straight)
    first = LocalSession(checkpoint_root=str(tmp_path / "b"))
    short = cfg.override({"train.total_steps": 4})
    train_loop({"cfg": short.to_dict(), "data": data, "run_dir": None}, session=first)
    resumed = LocalSession(checkpoint_root=str(tmp_path / "c"), resume_from=first.checkpoints[-1])
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=resumed)
    losses = ("loss/critic", "loss/gp", "loss/wdist", "loss/gen")
    assert [[r[k] for k in losses] for r in resumed.reports] == \
        [[r[k] for k in losses] for r in straight.reports[4:]]
    a = ckpt.load_checkpoint(straight.checkpoints[-1]).state
    b = ckpt.load_checkpoint(resumed.checkpoints[-1]).state
    assert a.keys() == b.keys() == set(ckpt.STATE_KEYS)
    # Everything but the wall-clock training time (which no two runs share).
    assert a.pop("train_seconds") > 0 and b.pop("train_seconds") > 0
    assert _tensors_equal(a, b)
    assert (a["ema"] is None) == (not recipe)


def test_resume_on_another_worker_count_reseeds_with_a_warning(piano_run, tmp_path, caplog):
    _, data, cfg, session = piano_run
    loaded = ckpt.load_checkpoint(session.checkpoints[-1])
    two_ranks = dict(loaded.state, rng=loaded.state["rng"] * 2)   # as if saved by 2 workers
    path = ckpt.save_checkpoint(str(tmp_path / "two"), state=two_ranks, cfg=loaded.cfg,
                                meta=loaded.meta)
    more = resolve("pianogan-cpu", TINY + ["train.total_steps=5"])
    s2 = LocalSession(resume_from=path)
    train_loop({"cfg": more.to_dict(), "data": data, "run_dir": None}, session=s2)
    assert [r["progress/step"] for r in s2.reports] == [5]
    assert any("statistically equivalent" in r.message and "saved by 2 worker(s), resumed on 1"
               in r.message for r in caplog.records)


SMALL_BUDGET = CONDITIONAL + ["loss.kind=r1", "train.ema_decay=0.99", "model.upsample=nearest"]


@pytest.mark.parametrize("family", ["pianogan", "spectogan"])
def test_conditional_r1_ema_augment_nearest_run_trains(family, tmp_path):
    """The whole small-budget recipe through the one loop: finite per-kind losses, the
    label map in meta.json, both weight sets in the checkpoint, the EMA for sampling."""
    if family == "pianogan":
        data = make_dataset(tmp_path / "d", "notes", n_train=7, n_validation=2, n_test=2,
                            labels=COMPOSERS)
        extra = ["train.augment=shift,cutout"]
    else:
        data = make_dataset(tmp_path / "d", "spectrogram", n_train=6, n_validation=2,
                            n_test=2, labels=["0", "1", "2"])
        extra = ["train.augment=shift,cutout,mask"]
    cfg = resolve(f"{family}-cpu", TINY + SMALL_BUDGET + extra + ["train.total_steps=2",
                                                                  "loss.n_critic=2"])
    session = LocalSession(checkpoint_root=str(tmp_path / "ck"))
    train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None}, session=session)
    for report in session.reports:
        assert {"loss/critic", "loss/r1", "loss/gen"} <= set(report)
        assert not {"loss/gp", "loss/wdist"} & set(report)
        assert all(math.isfinite(report[k]) for k in ("loss/critic", "loss/r1", "loss/gen"))
    loaded = ckpt.load_checkpoint(session.checkpoints[-1])
    names = ["Chopin", "Bach", "other"] if family == "pianogan" else ["0", "1", "2"]
    assert loaded.meta["label_map"]["names"] == names
    assert loaded.meta["label_map"]["params"] == (
        {"n_composers": 2, "min_class_windows": 2} if family == "pianogan" else {})
    state = loaded.state
    assert not torch.equal(state["ema"]["dense.weight"], state["generator"]["dense.weight"])
    g, _, _ = ckpt.load_generator(session.checkpoints[-1])
    assert g.n_classes == 3 and torch.equal(g.dense.weight, state["ema"]["dense.weight"])


def test_nan_under_r1_names_its_terms(tmp_path):
    data = make_dataset(tmp_path / "d", "notes", n_train=4, n_validation=2, n_test=2)
    cfg = resolve("pianogan-cpu", TINY + ["loss.kind=r1", "train.total_steps=2"])
    with pytest.raises(NonFiniteLossError) as info:
        train_loop({"cfg": cfg.to_dict(), "data": data, "run_dir": None},
                   session=LocalSession(), hooks=FaultHooks(nan_at_step=1))
    msg = str(info.value)
    assert "loss/r1=" in msg and "loss/gp" not in msg and "raise loss.r1_weight" in msg
