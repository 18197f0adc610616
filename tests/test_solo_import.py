"""solo-learn pretraining YAML files as configs: the real CIFAR recipe files of solo-learn
(tests/data/solo_learn, copied with their source commit) import to this suite's values."""

import json
from pathlib import Path

import pytest
import yaml

from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.solo_import import is_solo_config, load_config_file, translate

SOLO = Path(__file__).parent / "data" / "solo_learn"

# file -> (method here, optimizer, lr, weight_decay, method_args expected among the imported ones),
# read off each file by hand: lr is the file's lr x 256 / 256 (batch 256 on one device)
EXPECTED = {
    "simclr": ("simclr", "lars", 0.4, 1e-4, {"proj_hidden_dim": 2048, "proj_output_dim": 256, "temperature": 0.2}),
    "byol": ("byol", "lars", 1.0, 1e-5, {"pred_hidden_dim": 4096, "tau_base": 0.99, "tau_final": 1.0}),
    "nnclr": ("nnclr", "lars", 0.4, 1e-5, {"queue_size": 65536, "temperature": 0.2}),
    "vicreg": ("vicreg", "lars", 0.3, 1e-4, {"sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0}),
    "barlow": ("barlow", "lars", 0.3, 1e-4, {"proj_output_dim": 2048, "scale_loss": 0.1}),
    "simsiam": ("simsiam", "sgd", 0.5, 1e-5, {"pred_hidden_dim": 512}),
    "mocov3": ("mocov3", "lars", 0.3, 1e-6, {"temperature": 0.2, "tau_base": 0.99}),
    "dino": ("dino", "lars", 0.3, 1e-6, {"num_prototypes": 4096, "tau_base": 0.9995, "tau_final": 1.0}),
}


def raw(name: str) -> dict:
    return yaml.safe_load((SOLO / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_solo_learn_recipe_imports_to_its_values_here(name):
    method, optimizer, lr, weight_decay, method_args = EXPECTED[name]
    config = load_config_file(SOLO / f"{name}.yaml")
    assert (config.method, config.optimizer, config.dataset, config.backbone) == (
        method,
        optimizer,
        "cifar10",
        "resnet18",
    )
    assert (config.epochs, config.batch_size, config.lr, config.weight_decay) == (1000, 256, lr, weight_decay)
    assert {key: config.method_args[key] for key in method_args} == method_args
    if optimizer == "lars":
        assert config.optimizer_args == {"clip_lr": True, "eta": 0.02, "exclude_bias_n_norm": True}
    # this suite's recipes are solo-learn's: the imported run is the very run of the recipe's defaults
    recipe = RunConfig(method=method, dataset="cifar10", backbone="resnet18", epochs=1000, batch_size=256)
    assert config.resolved() == recipe.resolved() and config.run_id == recipe.run_id


def test_names_that_differ_are_translated_and_unused_kwargs_reported():
    simsiam = translate(raw("simsiam"))
    assert "method_kwargs.temperature" in simsiam.ignored  # SimSiam's loss has no temperature
    assert "defaults: augmentations: symmetric_weak.yaml" in simsiam.ignored
    barlow = raw("barlow")
    barlow["method_kwargs"]["lamb"] = 0.004
    assert translate(barlow).values["method_args"]["lambd"] == 0.004
    vicreg = translate(raw("vicreg"))
    assert "augmentations" in vicreg.ignored and "optimizer.classifier_lr" not in vicreg.ignored
    assert {"optimizer.lr", "max_epochs", "method_kwargs.sim_loss_weight", "optimizer.classifier_lr"} <= vicreg.taken
    assert vicreg.values["classifier_lr"] == 0.1  # the online classifier's, scaled as lr (batch 256 x 1)
    simsiam_sgd = raw("simsiam")
    simsiam_sgd["optimizer"]["exclude_bias_n_norm_wd"] = True
    assert translate(simsiam_sgd).values["optimizer_args"]["exclude_bias_n_norm_wd"] is True


def test_lr_is_scaled_by_the_global_batch_as_solo_learn_does():
    values = raw("simclr")
    values["optimizer"]["batch_size"] = 128
    values["devices"] = [0, 1, 2, 3]
    imported = translate(values)
    assert imported.values["batch_size"] == 512 and imported.values["lr"] == pytest.approx(0.8)
    assert "0.4 x 512 / 256 = 0.8" in imported.summary("simclr.yaml")
    values["optimizer"]["name"] = "adamw"
    values["optimizer"]["kwargs"] = {"betas": [0.9, 0.95]}
    assert translate(values).values["optimizer_args"] == {"beta1": 0.9, "beta2": 0.95}


def test_unsupported_choices_fail_naming_what_is_supported():
    swav = raw("simclr")
    swav["method"] = "swav"
    with pytest.raises(ConfigError, match=r"unknown solo-learn method 'swav'.*barlow_twins.*vicreg"):
        translate(swav)
    step = raw("simclr")
    step["scheduler"]["name"] = "step"
    with pytest.raises(ConfigError, match="solo-learn scheduler.name 'step'.*warmup_cosine"):
        translate(step)
    adam = raw("simclr")
    adam["optimizer"]["name"] = "adam"
    with pytest.raises(ConfigError, match="solo-learn optimizer.name 'adam'.*adamw, lars, sgd"):
        translate(adam)
    assert not is_solo_config({"method": "simclr", "optimizer": "lars", "backbone": "small"})


def test_train_takes_a_solo_learn_file_and_says_what_it_ignored(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    argv = ["train", "--config", str(SOLO / "simclr.yaml"), "--dataset", "digits", "--backbone", "small"]
    argv += ["--epochs", "1", "--batch-size", "64", "--subset", "200", "--out", str(out)]
    argv += ["--set", "method_args.proj_hidden_dim=64", "--set", "progress=false"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "solo-learn config simclr.yaml: method=simclr" in err
    ignored = next(line for line in err.splitlines() if "ignored" in line)
    assert (
        "hydra.*" in ignored and "data.train_path" in ignored and "defaults: augmentations: symmetric.yaml" in ignored
    )
    config = json.loads((out / "config.json").read_text())
    assert (config["method"], config["optimizer"], config["lr"], config["method_args"]["temperature"]) == (
        "simclr",
        "lars",
        0.4,
        0.2,
    )
    assert (config["dataset"], config["epochs"], config["batch_size"]) == ("digits", 1, 64)  # flags on top
