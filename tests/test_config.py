import pytest

from audiogan.config import PRESETS, Config, parse_assignment, preset, resolve
from audiogan.errors import UserError


@pytest.mark.parametrize("name", PRESETS)
def test_presets_validate_and_name_their_family(name):
    cfg = preset(name)
    assert cfg.preset == name
    assert cfg.model.family == name.split("-")[0]


def test_design_defaults():
    cfg = preset("pianogan")
    assert (cfg.data.window, cfg.data.hop) == (256, 64)
    assert (cfg.model.d, cfg.model.latent_dim, cfg.model.phase_shuffle) == (64, 100, 2)
    assert (cfg.loss.gp_weight, cfg.loss.n_critic) == (10.0, 5)
    assert (cfg.optim.lr_g, cfg.optim.lr_d, cfg.optim.beta1, cfg.optim.beta2) == (1e-4, 1e-4, 0.5, 0.9)
    assert cfg.optim.batch_size == 64
    assert (cfg.metrics.ndb_k, cfg.metrics.n_samples, cfg.metrics.classifier) == (50, 2000, "")
    assert cfg.ckpt_every == cfg.train.eval_every


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_unconditional_and_only_the_cpu_spectogan_left_the_papers_recipe(name):
    """Conditioning is off in every preset. The SpectoGAN CPU presets train the quality
    ablation's best row (R1, nearest upsampling, EMA, augmentation); the others keep the
    paper's recipe: transposed convolutions, WGAN-GP, no weight average, no augmentation."""
    cfg = preset(name)
    assert not cfg.model.conditional and cfg.model.pitch == "scalar"
    assert (cfg.data.n_composers, cfg.data.min_class_windows) == (8, 200)
    if name in ("spectogan-cpu", "spectogan-complex-cpu"):
        assert (cfg.model.d, cfg.model.upsample, cfg.loss.kind, cfg.loss.n_critic) == \
            (8, "nearest", "r1", 1)
        assert (cfg.loss.r1_weight, cfg.optim.lr_g, cfg.optim.beta1) == (1.0, 2e-4, 0.0)
        assert (cfg.train.ema_decay, cfg.augment_ops) == (0.999, ("shift", "cutout", "mask"))
        return
    assert (cfg.model.upsample, cfg.loss.kind) == ("transpose", "wgan-gp")
    assert (cfg.train.ema_decay, cfg.train.augment, cfg.augment_ops) == (0.0, "", ())


@pytest.mark.parametrize("name", PRESETS)
def test_dict_round_trip_is_exact(name):
    cfg = resolve(name, ["optim.lr_g=2e-4", "loss.n_critic=3", "compute.gpu=true"])
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert Config.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("optim.lr_g=2e-4", "optim.lr_g", 2e-4),
        ("optim.lr_g=0.0002", "optim.lr_g", 2e-4),
        ("optim.lr_d=1", "optim.lr_d", 1.0),  # int accepted for a float
        ("loss.n_critic=7", "loss.n_critic", 7),
        ("compute.gpu=true", "compute.gpu", True),
        ("compute.gpu=false", "compute.gpu", False),
        ("metrics.classifier=/a/b=c", "metrics.classifier", "/a/b=c"),  # split on first '='
        ("metrics.classifier=", "metrics.classifier", ""),
        ("train.total_steps=1e3", "train.total_steps", 1000),
    ],
)
def test_override_grammar_types(text, key, value):
    cfg = preset("pianogan").override([text])
    section, name = key.split(".")
    got = getattr(getattr(cfg, section), name)
    assert got == value and type(got) is type(value)


def test_override_mapping_form_equals_string_form():
    a = preset("spectogan").override({"optim.lr_g": 3e-4, "loss.gp_weight": 5})
    b = preset("spectogan").override(["optim.lr_g=3e-4", "loss.gp_weight=5"])
    assert a == b


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("optim.nope=1", "optim.nope"),
        ("nosection.lr=1", "nosection.lr"),
        ("optim=1", "optim"),
        ("optim.lr_g.x=1", "optim.lr_g.x"),
        ("loss.n_critic=2.5", "loss.n_critic"),
        ("loss.n_critic=abc", "loss.n_critic"),
        ("compute.gpu=3", "compute.gpu"),
        ("compute.workers=true", "compute.workers"),
        ("optim.lr_g=fast", "optim.lr_g"),
    ],
)
def test_bad_overrides_name_the_key(text, fragment):
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")):
        preset("pianogan").override([text])


def test_assignment_needs_equals():
    with pytest.raises(UserError):
        parse_assignment("optim.lr_g")


def test_from_dict_rejects_unknown_keys():
    d = preset("pianogan").to_dict()
    d["optim"]["lr_x"] = 1.0
    with pytest.raises(UserError, match="optim.lr_x"):
        Config.from_dict(d)
    with pytest.raises(UserError, match="extra"):
        Config.from_dict({"extra": {}})


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["optim.batch_size=64", "compute.workers=3"], "divisible"),
        (["loss.n_critic=0"], "n_critic"),
        (["optim.lr_g=-1"], "lr_g"),
        (["model.family=other"], "family"),
        (["data.window=128"], "window"),
        (["data.hop=300"], "hop"),
        (["metrics.ndb_k=100", "metrics.n_samples=50"], "n_samples"),
        (["model.upsample=bilinear"], "model.upsample"),
        (["loss.kind=hinge"], "loss.kind"),
        (["loss.r1_weight=-1"], "r1_weight"),
        (["loss.r1_every=0"], "r1_every"),
        (["train.ema_decay=1"], "ema_decay"),
        (["train.ema_rampup=-0.1"], "ema_rampup"),
        (["train.augment=shift,flip"], "train.augment"),
        (["train.augment=mask"], "no frequency axis"),   # pianogan: notes
        (["data.n_composers=0"], "n_composers"),
    ],
)
def test_validate_catches_bad_values(overrides, fragment):
    with pytest.raises(UserError, match=fragment):
        resolve("pianogan", overrides)


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown preset"):
        preset("wavegan")


def test_hash_changes_with_config():
    a = preset("pianogan")
    assert a.hash() == preset("pianogan").hash()
    assert a.hash() != a.override(["optim.lr_g=2e-4"]).hash()


def _version_1(cfg: Config) -> dict:
    """`cfg` as a config file written before schema 2 (no schema_version, the fixed
    spectrogram fields present, objective_mode spelled out)."""
    from audiogan.config import FIXED_SPECTROGRAM

    old = cfg.to_dict()
    del old["schema_version"]
    old["data"].update(FIXED_SPECTROGRAM)
    old["train"]["objective_mode"] = "min"
    return old


@pytest.mark.parametrize("name", PRESETS)
def test_version_1_configs_still_load(name):
    cfg = resolve(name, ["optim.lr_g=2e-4"])
    loaded = Config.from_dict(_version_1(cfg))
    assert loaded.override({"train.objective_mode": ""}) == cfg
    assert loaded.objective_mode == cfg.objective_mode == "min"
    assert Config.from_dict(cfg.to_dict())  # and the current version round-trips (above)


def test_committed_version_1_files_load():
    import glob
    import os

    import yaml

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = glob.glob(os.path.join(root, "results", "**", "*config.yaml"), recursive=True)
    assert paths
    for path in paths:
        with open(path) as f:
            Config.from_dict(yaml.safe_load(f)).validate()


def test_fixed_spectrogram_keys_are_one_line_errors():
    with pytest.raises(UserError, match=r"data.n_fft' is fixed \(256\).*hop = n_fft / 2"):
        resolve("spectogan-cpu", ["data.n_fft=512"])
    old = _version_1(preset("spectogan"))
    old["data"]["hop_length"] = 64
    with pytest.raises(UserError, match="data.hop_length=64"):
        Config.from_dict(old)
    with pytest.raises(UserError, match="schema_version 7"):
        Config.from_dict({**preset("spectogan").to_dict(), "schema_version": 7})


@pytest.mark.parametrize("overrides, message", [
    (["train.objective=eval/ndbb"], "unknown metric 'eval/ndbb'"),
    (["train.objective=eval/is"], "'eval/is' is a spectogan metric, not one of pianogan"),
    (["train.objective=eval/note_overlap", "train.objective_mode=min"],
     "better when higher \\(mode max\\), not mode min"),
    (["train.objective=loss/critic"], "unknown metric 'loss/critic'"),
])
def test_objective_is_checked_against_the_registry(overrides, message):
    with pytest.raises(UserError, match=message):
        resolve("pianogan-cpu", overrides)


def test_objective_mode_follows_the_metric():
    assert resolve("pianogan-cpu", ["train.objective=eval/note_overlap"]).objective_mode == "max"
    assert resolve("spectogan-cpu", ["train.objective=eval/is"]).objective_mode == "max"


def test_griffin_lim_momentum_default_and_older_configs_keep_the_plain_algorithm():
    cfg = preset("spectogan-cpu")
    assert cfg.data.griffin_lim_momentum == 0.99
    old = cfg.to_dict()
    old["schema_version"] = 2
    del old["data"]["griffin_lim_momentum"]
    assert Config.from_dict(old).data.griffin_lim_momentum == 0.0   # as it was evaluated
    assert Config.from_dict(_version_1(cfg)).data.griffin_lim_momentum == 0.99  # key present
    with pytest.raises(UserError, match="griffin_lim_momentum must be in"):
        resolve("spectogan-cpu", ["data.griffin_lim_momentum=0.999"])
    with pytest.raises(UserError, match="spectogan representation"):
        resolve("pianogan-cpu", ["data.representation=complex"])
    with pytest.raises(UserError, match="data.representation must be one of"):
        resolve("spectogan-cpu", ["data.representation=polar"])
