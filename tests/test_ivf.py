"""The IVF self-join: exact when it probes every list, and its recall predicted before it runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data import load_dataset
from benchmark.ivf import choose_nprobe, default_nlist, ivf_self_join, nearest_lists, train_centroids
from benchmark.neighbors import build_table, faiss_exact, recall_at_k, search_kind
from benchmark.neighbors.search import _drop_self
from benchmark.perf.knn import view_embeddings

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digit_views() -> np.ndarray:
    """8,000 pixel-prior embeddings of random crops of the digits images: real, structured data."""
    data = load_dataset("digits")
    return view_embeddings(data.train.images, 8000, dim=48, seed=3).numpy()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_probing_every_list_is_exact_search(digit_views, metric):
    x = digit_views[:3000]
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    nlist = 20
    found, raw, plan = ivf_self_join(torch.from_numpy(x), 6, l2=metric == "l2", nlist=nlist, nprobe=nlist)
    truth, truth_raw = faiss_exact(x, x, 6, "l2" if metric == "l2" else "cosine")
    assert plan.nprobe == nlist and found.shape == (3000, 6)
    # the same k nearest distances as exact search (ids may differ only between equally near views)
    expected = truth_raw**2 if metric == "l2" else 1 - truth_raw  # faiss_exact returns distances
    np.testing.assert_allclose(raw, expected, rtol=1e-3, atol=1e-3)
    assert (found == truth).mean() > 0.95
    # and the ids are the ones those distances belong to
    x64 = x.astype(np.float64)
    actual = ((x64[:, None] - x64[found]) ** 2).sum(-1) if metric == "l2" else np.einsum("nd,nkd->nk", x64, x64[found])
    np.testing.assert_allclose(raw, actual, rtol=1e-3, atol=1e-3)


def test_few_probes_miss_neighbours_and_the_measured_recall_says_so(digit_views):
    x = digit_views
    found, raw, _ = ivf_self_join(torch.from_numpy(x), 11, l2=True, nlist=64, nprobe=1)
    index, _ = _drop_self(found, np.sqrt(raw), 10)
    one_probe = recall_at_k(index, x, 10, "l2")
    found, raw, _ = ivf_self_join(torch.from_numpy(x), 11, l2=True, nlist=64, nprobe=8)
    index, _ = _drop_self(found, np.sqrt(raw), 10)
    assert one_probe < 0.9 < recall_at_k(index, x, 10, "l2")


def test_chosen_nprobe_meets_the_target_it_predicts(digit_views):
    x = torch.from_numpy(digit_views)
    centroids = train_centroids(x, 64, seed=0)
    low, low_recall = choose_nprobe(x, centroids, 10, True, 0.80, seed=0)
    high, high_recall = choose_nprobe(x, centroids, 10, True, 0.99, seed=0)
    assert 1 <= low < high <= 64 and 0.80 <= low_recall <= high_recall and high_recall >= 0.99
    # the prediction is what the join then finds, on other queries
    found, raw, plan = ivf_self_join(x, 11, l2=True, nlist=64, recall_target=0.95)
    index, _ = _drop_self(found, np.sqrt(raw), 10)
    assert plan.nprobe < 64 and plan.sample_recall >= 0.95
    assert recall_at_k(index, digit_views, 10, "l2", seed=7) == pytest.approx(plan.sample_recall, abs=0.02)


def test_nearest_lists_are_ordered_and_lists_cover_every_point(digit_views):
    x = torch.from_numpy(digit_views)
    centroids = train_centroids(x, default_nlist(len(x)), seed=0)
    probes = nearest_lists(x, centroids, 3)
    d = torch.cdist(x, centroids)
    assert torch.equal(probes[:, 0], d.argmin(1))
    assert (d.gather(1, probes).diff(dim=1) >= 0).all()
    assert default_nlist(len(x)) == 89 and default_nlist(100) == 2 and default_nlist(10) == 1


def test_build_table_ivf_and_auto_above_the_threshold(digit_views, monkeypatch):
    vectors = torch.from_numpy(digit_views)
    table = build_table(vectors, 10, "l2", "ivf", CPU)
    assert table.method == "ivf" and table.index.shape == (8000, 10) and table.recall >= 0.9
    assert not (table.index == np.arange(8000)[:, None]).any()
    exact = build_table(vectors, 10, "l2", "exact", CPU)
    same = table.index[:, 0] == exact.index[:, 0]
    assert same.mean() > 0.95
    # both compute |q|^2 - 2 q.p + |p|^2 in float32: near-duplicates differ by rounding only
    np.testing.assert_allclose(table.dist[same, 0], exact.dist[same, 0], rtol=1e-3, atol=5e-3)
    assert search_kind("auto", 200_000) == "exact" and search_kind("auto", 200_001) == "ivf"
    assert search_kind("hnsw", 10) == "hnsw" and search_kind("exact", 10**7) == "exact"


def test_too_few_candidates_is_a_clear_error(digit_views):
    with pytest.raises(ValueError, match="fewer than 60 candidates"):
        ivf_self_join(torch.from_numpy(digit_views[:2000]), 60, l2=True, nlist=50, nprobe=1)
