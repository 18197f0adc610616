import dataclasses

import pytest

from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.methods import METHODS


def test_run_id_is_stable_and_ignores_where_it_runs():
    base = RunConfig.from_dict({"method": "byol", "epochs": 7, "seed": 3})
    same = RunConfig.from_dict({"seed": 3, "epochs": 7, "method": "byol"})
    assert base.run_id == same.run_id
    assert len(base.run_id) == 12 and int(base.run_id, 16) >= 0
    for key, value in {
        "device": "cpu",
        "data_dir": "/x",
        "wandb_mode": "offline",  # data_path: its content counts
        "progress": False,
        "checkpoint_every": 3,
        "eval_every": 1,
        "compile": True,
    }.items():
        assert dataclasses.replace(base, **{key: value}).run_id == base.run_id, key
    for key, value in {"seed": 4, "epochs": 8, "aug": "weak", "lr": 0.1, "subset": 100, "batch_size": 128}.items():
        assert dataclasses.replace(base, **{key: value}).run_id != base.run_id, key


def test_run_id_resolves_defaults_before_hashing():
    implicit = RunConfig.from_dict({"method": "simclr", "batch_size": 512})
    explicit = RunConfig.from_dict(
        {"method": "simclr", "batch_size": 512, "lr": 0.8, "optimizer": "lars", "method_args": {"temperature": 0.2}}
    )
    assert implicit.run_id == explicit.run_id
    assert implicit.resolved()["lr"] == pytest.approx(0.8)  # 0.4 x 512 / 256


def test_plain_ssl_ignores_neighbour_settings_in_run_id():
    plain = RunConfig.from_dict({"method": "simclr"})
    assert RunConfig.from_dict({"prior": "pixel", "k": 0}).run_id == plain.run_id
    assert RunConfig.from_dict({"sampling": "radius", "metric": "cosine"}).run_id == plain.run_id
    gps = RunConfig.from_dict({"prior": "pixel", "k": 5})
    assert gps.is_gps and gps.run_id != plain.run_id
    for change in ({"k": 4}, {"metric": "cosine"}, {"sampling": "radius"}, {"prior_args": {"pca_dim": 8}}):
        assert RunConfig.from_dict({"prior": "pixel", "k": 5, **change}).run_id != gps.run_id, change
    assert RunConfig.from_dict({"prior": "oracle"}).is_gps


def test_overrides_parse_yaml_values_and_dotted_keys():
    config = RunConfig().with_overrides(["lr=1", "subset=null", "method_args.temperature=0.5", "compile=true"])
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.subset is None and config.compile is True
    assert config.method_args == {"temperature": 0.5}


@pytest.mark.parametrize(
    "values, fragments",
    [
        ({"dataset": "cifar11"}, ["unknown dataset 'cifar11'", "did you mean 'cifar10'", "valid:", "digits"]),
        ({"method": "simclrr"}, ["unknown method 'simclrr'", "valid: " + ", ".join(sorted(METHODS.names()))]),
        ({"aug": "medium"}, ["unknown augmentation 'medium'", "crop, none, strong, weak"]),
        ({"backbone": "resnet1"}, ["unknown backbone 'resnet1'", "resnet18", "timm"]),
        ({"epochs": -1}, ["epochs must be >= 0, got -1"]),
        ({"epochs": "ten"}, ["epochs must be int, got 'ten'"]),
        ({"batch_szie": 4}, ["unknown config key 'batch_szie'", "did you mean 'batch_size'"]),
        ({"method_args": {"temprature": 1.0}}, ["method_args key for simclr 'temprature'", "temperature"]),
        ({"aug_args": {"flip_p": 2}}, ["aug_args.flip_p must be in [0, 1]"]),
        ({"optimizer": "adam"}, ["unknown optimizer 'adam'", "adamw, lars, sgd"]),
        ({"prior": "pixle", "k": 5}, ["unknown prior 'pixle'", "did you mean 'pixel'", "oracle"]),
        ({"prior": "timm", "k": 5}, ["prior 'timm' needs an argument: timm:<model>"]),
        ({"prior": "timm:resnet-50", "k": 5}, ["unknown timm model 'resnet-50'"]),
        ({"prior": "pixel:x", "k": 5}, ["prior 'pixel' takes no argument"]),
        ({"prior": "pixel", "k": 5, "prior_args": {"pca": 3}}, ["prior_args key for pixel 'pca'", "pca_dim"]),
        ({"k": 5}, ["k=5 needs a prior"]),
        ({"prior": "pixel", "k": 5, "sampling": "farthest"}, ["unknown sampling rule 'farthest'", "farthest-in-ball"]),
        ({"prior": "pixel", "k": 5, "metric": "l1"}, ["unknown metric 'l1'", "cosine, l2"]),
        ({"method_args": {"temperature": 0}}, ["method_args.temperature must be > 0, got 0"]),
        ({"method": "byol", "method_args": {"tau_base": 5}}, ["tau_base <= tau_final <= 1"]),
    ],
)
def test_bad_values_are_named_with_the_valid_choices(values, fragments):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(values)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"dataset": "nope", "method": "nope", "epochs": -2, "colour": 1})
    message = str(err.value)
    for fragment in ("unknown dataset", "unknown method", "epochs must be", "unknown config key 'colour'"):
        assert fragment in message


def test_yaml_config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("method: vicreg\naug: weak\nmethod_args:\n  sim_weight: 10\n")
    config = RunConfig.from_yaml(path)
    assert (config.method, config.aug, config.method_args) == ("vicreg", "weak", {"sim_weight": 10.0})
    path.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")
