"""A run's sampler from its config (benchmark/pairing.py) on real data: the pixel prior, plain SSL,
the oracle, and the embedding key."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.data.base import Split
from benchmark.neighbors import IdentitySampler, KnnUniformSampler, SameClassSampler
from benchmark.pairing import build_sampler
from benchmark.priors import build_prior, embedding_key
from tests.neighbors.draws import CPU, gen

pytestmark = pytest.mark.usefixtures("one_thread")


# ===================================================================== from a config
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return load_dataset("synthetic", data_dir=tmp_path_factory.mktemp("data"))


def pixel_neighbours(data, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force float64 k-NN of the flattened, centred pixels in [0, 1] (self excluded)."""
    x = data.pretrain.images.reshape(len(data.pretrain), -1).astype(np.float64) / 255
    x -= x.mean(axis=0)
    sq = (x * x).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * x @ x.T
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1, kind="stable")
    d = np.sqrt(np.maximum(np.take_along_axis(d2, order[:, : k + 1], 1), 0))
    return order[:, :k], d


def test_build_sampler_pixel_prior(synthetic, tmp_path):
    config = RunConfig.from_dict({"dataset": "synthetic", "prior": "pixel", "k": 5})
    setup = build_sampler(config, synthetic, CPU, cache_root=tmp_path / "cache", results_dir=tmp_path / "results")
    assert isinstance(setup.sampler, KnnUniformSampler)
    n = len(synthetic.pretrain)
    truth, d = pixel_neighbours(synthetic, 5)
    # where the 5th and 6th neighbours are not near-tied (gap > 2e-5, far above float32 error; 999 of
    # the 1,000 images) the 5-NN set is well defined, and every draw must come from it
    defined = d[:, 5] - d[:, 4] > 2e-5
    assert defined.sum() >= n - 2
    anchors = torch.arange(n).repeat(10)
    drawn = setup.sampler(anchors, gen(0)).numpy()
    assert (truth[anchors.numpy()] == drawn[:, None]).any(axis=1)[defined[anchors.numpy()]].all()
    labels = synthetic.pretrain.labels
    assert setup.prior_nn_agreement == pytest.approx(float((labels[truth] == labels[:, None]).mean()), abs=1e-3)
    report = setup.report
    assert report["embedding_cached"] is False and report["table_cached"] is False
    assert report["embedding_dim"] == 16 * 16 * 3 and report["table_method"] == "exact-faiss"
    assert report["prior"] == "pixel" and report["tau"] is None and report["table_recall"] is None
    again = build_sampler(config, synthetic, CPU, cache_root=tmp_path / "cache", results_dir=tmp_path / "results")
    assert again.report["embedding_cached"] is True and again.report["table_cached"] is True
    assert again.report["embedding_key"] == report["embedding_key"]
    assert again.prior_nn_agreement == setup.prior_nn_agreement
    assert torch.equal(again.sampler(anchors, gen(0)), setup.sampler(anchors, gen(0)))
    # the radius rule over the same cached embedding: adaptive tau = mean distance to the 5 nearest
    radius = RunConfig.from_dict({"dataset": "synthetic", "prior": "pixel", "k": 5, "sampling": "radius"})
    ball = build_sampler(radius, synthetic, CPU, cache_root=tmp_path / "cache", results_dir=tmp_path / "results")
    assert ball.report["embedding_cached"] is True and ball.report["table_cached"] is True
    assert ball.report["tau"] == pytest.approx(d[:, :5].mean(), rel=1e-4)
    drawn = ball.sampler(anchors, gen(1)).numpy()
    inside = (truth[anchors.numpy()] == drawn[:, None]) & (d[anchors.numpy(), :5] <= ball.report["tau"])
    assert (inside.any(axis=1) | (drawn == anchors.numpy())).all()


def test_build_sampler_plain_and_oracle(synthetic, tmp_path):
    for values in ({"dataset": "synthetic"}, {"dataset": "synthetic", "prior": "pixel", "k": 0}):
        setup = build_sampler(RunConfig.from_dict(values), synthetic, CPU, cache_root=tmp_path, results_dir=tmp_path)
        assert isinstance(setup.sampler, IdentitySampler) and setup.prior_nn_agreement is None
    assert not (tmp_path / "embeddings").exists() and not (tmp_path / "neighbors").exists()
    oracle = build_sampler(
        RunConfig.from_dict({"dataset": "synthetic", "prior": "oracle"}),
        synthetic,
        CPU,
        cache_root=tmp_path,
        results_dir=tmp_path,
    )
    assert isinstance(oracle.sampler, SameClassSampler) and oracle.prior_nn_agreement == 1.0
    labels = torch.as_tensor(synthetic.pretrain.labels)
    anchors = torch.arange(len(labels)).repeat(5)
    drawn = oracle.sampler(anchors, gen(0))
    assert (labels[drawn] == labels[anchors]).all() and (drawn != anchors).all()


# ========================================================================= cache keys
def test_embedding_key_follows_data_and_prior(synthetic, tmp_path):
    pixel = build_prior("pixel", {})
    key = embedding_key(pixel, "pixel", synthetic)
    assert len(key) == 16
    # equal inputs: same key (separately built priors, explicit defaults, a reloaded dataset, another test
    # split); the pretraining images (train + val) are what it hashes
    assert embedding_key(build_prior("pixel", {}), "pixel", synthetic) == key
    assert embedding_key(build_prior("pixel", {"pca_dim": None, "whiten": False}), "pixel", synthetic) == key
    assert embedding_key(pixel, "pixel", load_dataset("synthetic", data_dir=tmp_path)) == key
    assert embedding_key(pixel, "pixel", dataclasses.replace(synthetic, test=synthetic.val)) == key
    assert embedding_key(pixel, "pixel", dataclasses.replace(synthetic, val=synthetic.test)) != key
    # the data's content changes it
    assert embedding_key(pixel, "pixel", load_dataset("synthetic", data_dir=tmp_path, subset=500)) != key
    images = synthetic.train.images.copy()
    images[17, 3, 5, 1] ^= 1
    flipped = dataclasses.replace(synthetic, train=Split(images, synthetic.train.labels))
    assert embedding_key(pixel, "pixel", flipped) != key
    labels = synthetic.train.labels.copy()
    labels[0] = (labels[0] + 1) % 10
    relabelled = dataclasses.replace(synthetic, train=Split(synthetic.train.images, labels))
    assert embedding_key(pixel, "pixel", relabelled) != key
    assert synthetic.train.images[17, 3, 5, 1] != images[17, 3, 5, 1]  # the copy, not the original, was flipped
    # the prior's settings change it
    pca = embedding_key(build_prior("pixel", {"pca_dim": 8}), "pixel", synthetic)
    assert pca != key
    assert embedding_key(build_prior("pixel", {"pca_dim": 8, "whiten": True}), "pixel", synthetic) not in (key, pca)
    assert embedding_key(build_prior("pixel", {"pca_dim": 16}), "pixel", synthetic) not in (key, pca)
