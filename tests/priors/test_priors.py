"""Every prior on real small data (synthetic gratings, digits), pretrained ones from local weight files."""

import numpy as np
import pytest
import torch

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.neighbors import build_table, prior_nn_agreement
from benchmark.priors import build_prior, embedding_key, prior_embeddings
from benchmark.train import train_run

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return load_dataset("synthetic", data_dir=tmp_path_factory.mktemp("data"))


def agreement(vectors: torch.Tensor, labels: np.ndarray, k: int = 5) -> float:
    return prior_nn_agreement(build_table(vectors, k, "l2", "exact", CPU).index, labels, k)


def test_pixel_prior_is_centred_pixels_and_pca_whitens(synthetic):
    raw = build_prior("pixel", {}).embed(synthetic, CPU)
    flat = synthetic.pretrain.images.reshape(len(synthetic.pretrain), -1) / 255.0
    np.testing.assert_allclose(raw.numpy(), flat - flat.mean(0), atol=1e-5)
    pca = build_prior("pixel", {"pca_dim": 8, "whiten": True}).embed(synthetic, CPU)
    assert pca.shape == (len(synthetic.pretrain), 8)
    np.testing.assert_allclose(pca.std(0).numpy(), 1.0, atol=1e-3)
    cov = np.cov(pca.numpy().T)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-3  # principal components are uncorrelated
    assert agreement(raw, synthetic.pretrain.labels) > 0.5  # gratings of one class look alike in pixels


def test_random_prior_is_a_fixed_random_backbone(synthetic):
    first = build_prior("random", {"backbone": "small"}).embed(synthetic, CPU)
    again = build_prior("random", {"backbone": "small"}).embed(synthetic, CPU)
    other = build_prior("random", {"backbone": "small", "seed": 1}).embed(synthetic, CPU)
    assert first.shape == (len(synthetic.pretrain), 256)
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("kind", ["autoencoder", "vae"])
def test_autoencoders_train_on_the_data_and_embed_deterministically(kind, synthetic):
    args = {"epochs": 3, "latent_dim": 16, "size": 16}
    first = build_prior(kind, args).embed(synthetic, CPU)
    again = build_prior(kind, args).embed(synthetic, CPU)
    assert first.shape == (len(synthetic.pretrain), 16) and torch.equal(first, again)
    assert agreement(first, synthetic.pretrain.labels) > 0.3  # well above chance (0.1)


def test_timm_prior_from_a_local_weights_file(synthetic, tmp_path):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=0)
    path = tmp_path / "test_resnet.pt"
    torch.save(model.state_dict(), path)
    prior = build_prior("timm:test_resnet", {"weights": str(path)})
    vectors = prior.embed(synthetic, CPU)
    cfg = timm.data.resolve_data_config({}, model=model)
    x = torch.as_tensor(synthetic.pretrain.images[:4]).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=cfg["input_size"][1:], mode="bilinear", antialias=True)
    x = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.eval()(x)
    torch.testing.assert_close(vectors[:4], expected, atol=1e-4, rtol=1e-4)
    # the weights file's content is part of the cache key
    torch.save({k: v + 1 for k, v in model.state_dict().items()}, tmp_path / "other.pt")
    other = build_prior("timm:test_resnet", {"weights": str(tmp_path / "other.pt")})
    assert embedding_key(prior, "timm:test_resnet", synthetic) != embedding_key(other, "timm:test_resnet", synthetic)


def test_timm_prior_native_input_is_the_papers_torchvision_resnet_at_the_datasets_resolution(synthetic, tmp_path):
    """The official GPS code embeds CIFAR with torchvision's ImageNet ResNet-50 on the 32 px images,
    normalised with CIFAR's own statistics. A torchvision state dict loads into timm's ResNet (the
    same parameter names), and `input: native` feeds the images as they are: the features equal
    torchvision's model's (a random-init ResNet-18 stands in for the downloaded weights)."""
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-torchvision.pth"
    torch.save(reference.state_dict(), path)
    reference.fc = torch.nn.Identity()
    prior = build_prior("timm:resnet18", {"weights": str(path), "input": "native"})
    vectors = prior.embed(synthetic, CPU)
    x = torch.as_tensor(synthetic.pretrain.images[:4]).permute(0, 3, 1, 2).float() / 255
    assert x.shape[-1] == synthetic.image_size  # no resize
    x = (x - torch.tensor(synthetic.mean).view(1, 3, 1, 1)) / torch.tensor(synthetic.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.eval()(x)
    torch.testing.assert_close(vectors[:4], expected, atol=1e-4, rtol=1e-4)
    model_input = build_prior("timm:resnet18", {"weights": str(path)})
    assert embedding_key(prior, "timm:resnet18", synthetic) != embedding_key(model_input, "timm:resnet18", synthetic)
    with pytest.raises(ConfigError, match="unknown prior_args.input 'raw'.*model, native"):
        build_prior("timm:resnet18", {"input": "raw"})


def test_torchvision_weights_without_internet_say_what_to_pass(synthetic):
    prior = build_prior("timm:resnet18", {"weights": "torchvision:IMAGENET1K_V1", "input": "native"})
    with pytest.raises(ConfigError, match=r"could not be downloaded .*prior_args.weights=<local file>"):
        prior.embed(synthetic, CPU)
    with pytest.raises(ConfigError, match="torchvision has no weights 'IMAGENET9K' for 'resnet18'"):
        build_prior("timm:resnet18", {"weights": "torchvision:IMAGENET9K"}).embed(synthetic, CPU)


def test_timm_prior_without_internet_says_to_pass_a_file(synthetic, monkeypatch):
    import huggingface_hub.constants

    # the hub's offline mode fails at once; a real network failure takes the same path after retries
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    prior = build_prior("timm:resnet18", {})
    with pytest.raises(ConfigError, match="prior_args.weights"):
        prior.embed(synthetic, CPU)


@pytest.mark.slow
def test_clip_prior_from_a_local_weights_file(tmp_path):
    import open_clip

    data = load_dataset("digits", data_dir=tmp_path, subset=60)
    model = open_clip.create_model("PE-Core-T-16-384", pretrained=None)
    path = tmp_path / "clip.pt"
    torch.save(model.state_dict(), path)
    vectors = build_prior("clip:PE-Core-T-16-384", {"weights": str(path), "batch_size": 16}).embed(data, CPU)
    with torch.no_grad():
        dim = model.encode_image(torch.zeros(1, 3, 384, 384)).shape[1]
    assert vectors.shape == (len(data.pretrain), dim) and torch.isfinite(vectors).all()
    again = build_prior("clip:PE-Core-T-16-384", {"weights": str(path), "batch_size": 16}).embed(data, CPU)
    torch.testing.assert_close(vectors, again)


def test_run_prior_uses_an_earlier_runs_backbone(tmp_path, monkeypatch):
    data = load_dataset("digits", data_dir=tmp_path / "data")
    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "epochs": 1,
            "batch_size": 128,
            "progress": False,
            "method_args": {"proj_hidden_dim": 128},
        }
    )
    run_dir = tmp_path / "results" / "sweep" / config.run_id
    train_run(config, run_dir, data=data)
    by_path = build_prior(f"run:{run_dir}", {}).embed(data, CPU)
    from benchmark.priors import PriorContext

    by_id = build_prior(f"run:{config.run_id}", {}, PriorContext(tmp_path / "results")).embed(data, CPU)
    assert torch.equal(by_path, by_id) and by_path.shape == (len(data.pretrain), 256)
    random_init = build_prior("random", {"backbone": "small"}).embed(data, CPU)
    assert not torch.allclose(by_path, random_init)
    with pytest.raises(ConfigError, match="train that run first"):
        build_prior("run:0123456789ab", {}, PriorContext(tmp_path / "results")).embed(data, CPU)


def test_embeddings_are_cached_and_reused(synthetic, tmp_path):
    prior = build_prior("pixel", {"pca_dim": 4})
    first = prior_embeddings(prior, "pixel", synthetic, tmp_path, CPU)
    second = prior_embeddings(build_prior("pixel", {"pca_dim": 4}), "pixel", synthetic, tmp_path, CPU)
    assert not first.cached and second.cached and torch.equal(first.vectors, second.vectors)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 1


def test_prior_specs_are_checked():
    with pytest.raises(ConfigError, match="unknown prior 'clipp'"):
        build_prior("clipp:x", {})
    with pytest.raises(ConfigError, match="needs an argument"):
        build_prior("run", {})
    with pytest.raises(ConfigError, match="whiten needs prior_args.pca_dim"):
        build_prior("pixel", {"whiten": True})
    with pytest.raises(ConfigError, match="unknown open_clip model"):
        build_prior("clip:not-a-model", {})
