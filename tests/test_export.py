"""`gpsbench export`: a trained backbone as a .safetensors file that `benchmark.load_backbone` rebuilds,
and that another sweep uses as a `timm:` prior. Trained for real on digits (2 epochs, timm's tiny
test_resnet), features compared on the real images."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

import benchmark
from benchmark.backbone_file import read_metadata
from benchmark.backbones import build_backbone, load_weights
from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.data import load_run_data
from benchmark.errors import ConfigError, DamagedFile
from benchmark.evaluate import extract_features
from benchmark.export import export_backbone, timm_model_name
from benchmark.priors import build_prior
from benchmark.train import train_run
from tests.conftest import small_method_args

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A done digits run and the data it trained on."""
    root = tmp_path_factory.mktemp("export")
    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "subset": 600,
            "backbone": "timm:test_resnet",
            "epochs": 2,
            "batch_size": 128,
            "progress": False,
            "data_dir": str(root / "data"),
            "method_args": small_method_args("simclr", 64),
        }
    )
    data = load_run_data(config)
    run_dir = root / "run"
    train_run(config, run_dir, data=data)
    return run_dir, data, config


def trained_backbone(run_dir, data):
    """The run's backbone as the suite rebuilds it from checkpoint.pt (as `run:` priors do)."""
    model, _ = build_backbone("timm:test_resnet", data.image_size)
    load_weights(model, run_dir / "checkpoint.pt")
    return model


def test_export_load_gives_the_trained_features(trained, tmp_path, capsys):
    run_dir, data, config = trained
    out = tmp_path / "backbone.safetensors"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert "exported timm:test_resnet (timm model test_resnet" in capsys.readouterr().out
    metadata = read_metadata(out)
    assert metadata["backbone"] == "timm:test_resnet" and metadata["timm_model"] == "test_resnet"
    assert metadata["run_id"] == config.run_id and metadata["method"] == "simclr" and metadata["epochs"] == "2"
    assert metadata["image_size"] == "8" and metadata["feature_dim"] == "96"
    assert json.loads(metadata["mean"]) == list(data.mean) and json.loads(metadata["std"]) == list(data.std)
    assert metadata["gps_bench_version"] == benchmark.__version__

    loaded = benchmark.load_backbone(out)
    assert not loaded.training
    images = data.test.images
    got = extract_features(loaded, images, json.loads(metadata["mean"]), json.loads(metadata["std"]), CPU)
    expected = extract_features(trained_backbone(run_dir, data), images, data.mean, data.std, CPU)
    assert got.shape == (len(images), 96) and torch.equal(got, expected)
    torch.manual_seed(0)
    untrained, _ = build_backbone("timm:test_resnet", data.image_size)
    assert not torch.allclose(got, extract_features(untrained, images, data.mean, data.std, CPU), atol=1e-3)


def test_an_export_is_a_timm_prior_with_the_loaded_backbones_embeddings(trained, tmp_path):
    run_dir, data, _ = trained
    out = tmp_path / "prior.safetensors"
    export_backbone(run_dir, out)
    loaded = benchmark.load_backbone(out)
    native = build_prior("timm:test_resnet", {"weights": str(out), "input": "native"}).embed(data, CPU)
    assert torch.equal(native, extract_features(loaded, data.pretrain.images, data.mean, data.std, CPU))
    # input: model feeds it at the export's size and normalisation (here the same data: the same numbers)
    model_input = build_prior("timm:test_resnet", {"weights": str(out)}).embed(data, CPU)
    expected = extract_features(loaded, data.pretrain.images, data.mean, data.std, CPU, size=data.image_size)
    assert torch.equal(model_input, expected)
    with pytest.raises(ConfigError, match="exported timm:test_resnet; use prior timm:test_resnet"):
        build_prior("timm:resnet18", {"weights": str(out)}).embed(data, CPU)
    # a sweep names it like any prior: RunConfig validates the spec and its weights file
    RunConfig.from_dict({"prior": "timm:test_resnet", "k": 5, "prior_args": {"weights": str(out)}})


def test_export_refuses_unfinished_runs_and_load_refuses_other_files(trained, tmp_path, capsys):
    run_dir, _, _ = trained
    running = tmp_path / "running"
    shutil.copytree(run_dir, running)
    status = json.loads((running / "status.json").read_text())
    (running / "status.json").write_text(json.dumps({**status, "state": "running"}))
    with pytest.raises(ConfigError, match="is running, not done"):
        export_backbone(running, tmp_path / "x.safetensors")
    no_checkpoint = tmp_path / "no_checkpoint"
    shutil.copytree(run_dir, no_checkpoint)
    (no_checkpoint / "checkpoint.pt").unlink()
    assert main(["export", str(no_checkpoint), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "has no checkpoint.pt" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="is not a run directory"):
        export_backbone(tmp_path, tmp_path / "x.safetensors")
    with pytest.raises(ConfigError, match="a .safetensors file"):
        export_backbone(run_dir, tmp_path / "x.pt")
    assert not (tmp_path / "x.safetensors").exists()

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ConfigError, match="not a gps-bench backbone export"):
        benchmark.load_backbone(plain)
    torch.save({"w": torch.zeros(2)}, tmp_path / "state.pt")
    with pytest.raises(DamagedFile, match="not a safetensors file"):
        benchmark.load_backbone(tmp_path / "state.pt")


def test_the_cifar_resnet_is_timms_resnet_with_the_exported_stem():
    """The metadata's claim: cifar_resnet18's tensors load into timm's resnet18 with a 3x3/s1/p2 stem
    and no maxpool, which then computes the same features."""
    import timm

    torch.manual_seed(0)
    ours, _ = build_backbone("cifar_resnet18", 8)
    assert timm_model_name("cifar_resnet18", ours) == "resnet18"
    assert timm_model_name("small", build_backbone("small", 8)[0]) == ""
    theirs = timm.create_model(timm_model_name("cifar_resnet18", ours), num_classes=0)
    theirs.conv1 = torch.nn.Conv2d(3, 64, 3, stride=1, padding=2, bias=False)
    theirs.maxpool = torch.nn.Identity()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=1e-6, rtol=1e-6)
