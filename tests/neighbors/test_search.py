"""Neighbour search (benchmark/neighbors/search.py): exact, HNSW and torch tables on points whose neighbours
are known, the on-disk cache, and the figures read from a table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import benchmark.neighbors.search as search
from benchmark.neighbors import (
    adaptive_tau,
    build_table,
    faiss_exact,
    neighbor_table,
    prior_nn_agreement,
    recall_at_k,
    torch_exact,
)
from benchmark.neighbors.search import _drop_self
from tests.neighbors.draws import CPU, gen

pytestmark = pytest.mark.usefixtures("one_thread")


# =========================================================================== search
# points on a line at 2^i - 1: every gap is larger than all the gaps before it, so no distance ties
LINE = [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0]


LINE_NEIGHBOURS = [  # the 3 nearest of each point, nearest first (worked out by hand)
    [1, 2, 3],
    [0, 2, 3],
    [1, 0, 3],
    [2, 1, 0],
    [3, 2, 1],
    [4, 3, 2],
    [5, 4, 3],
]


LINE_DISTANCES = [
    [1, 3, 7],
    [1, 2, 6],
    [2, 3, 4],
    [4, 6, 7],
    [8, 12, 14],
    [16, 24, 28],
    [32, 48, 56],
]


def test_exact_search_on_a_line_gives_the_known_neighbours_in_order():
    vectors = torch.tensor(LINE).unsqueeze(1)
    table = build_table(vectors, 3, "l2", "exact", CPU)
    assert table.index.dtype == np.int32 and table.dist.dtype == np.float32
    assert table.index.shape == (7, 3) and table.k == 3
    np.testing.assert_array_equal(table.index, LINE_NEIGHBOURS)
    np.testing.assert_allclose(table.dist, LINE_DISTANCES, rtol=1e-6)  # euclidean, not squared
    assert table.metric == "l2" and table.method == "exact-faiss"
    assert table.cached is False and table.recall is None
    # k = 1 is the first column; the same line in 3-D (shifted, rotated into a diagonal) changes nothing
    np.testing.assert_array_equal(build_table(vectors, 1, "l2", "exact", CPU).index, np.array(LINE_NEIGHBOURS)[:, :1])
    direction = torch.tensor([2.0, -1.0, 2.0]) / 3.0
    lifted = torch.tensor([5.0, 1.0, -2.0]) + vectors * direction
    lifted_table = build_table(lifted, 3, "l2", "exact", CPU)
    np.testing.assert_array_equal(lifted_table.index, LINE_NEIGHBOURS)
    np.testing.assert_allclose(lifted_table.dist, LINE_DISTANCES, rtol=1e-4, atol=1e-4)


def test_exact_search_on_a_grid():
    # regular 5 x 5 grid, spacing 2: the interior points' 4 nearest are their 4 axis neighbours at distance 2
    ys, xs = np.mgrid[0:5, 0:5]
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32) * 2
    table = build_table(torch.from_numpy(points), 4, "l2", "exact", CPU)
    at = lambda x, y: 5 * y + x  # noqa: E731
    for y in range(1, 4):
        for x in range(1, 4):
            row = at(x, y)
            assert set(table.index[row].tolist()) == {at(x - 1, y), at(x + 1, y), at(x, y - 1), at(x, y + 1)}
            np.testing.assert_allclose(table.dist[row], [2, 2, 2, 2], rtol=1e-6)
    corner = table.index[at(0, 0)]
    assert set(corner[:2].tolist()) == {at(1, 0), at(0, 1)} and corner[2] == at(1, 1)
    np.testing.assert_allclose(table.dist[at(0, 0)][:3], [2, 2, 2 * math.sqrt(2)], rtol=1e-6)
    # anisotropic grid (x at 0,1,3,7; y at 0,10,30,70): no ties, so the order is unique —
    # first the row's other points by x-gap, then the same column in the nearest row
    xs_, ys_ = [0, 1, 3, 7], [0, 10, 30, 70]
    points = np.array([[x, y] for y in ys_ for x in xs_], dtype=np.float32)
    table = build_table(torch.from_numpy(points), 4, "l2", "exact", CPU)
    near_x = {0: [1, 2, 3], 1: [0, 2, 3], 2: [1, 0, 3], 3: [2, 1, 0]}  # the line rule again
    near_row = {0: 1, 1: 0, 2: 1, 3: 2}
    for r in range(4):
        for c in range(4):
            expected = [4 * r + j for j in near_x[c]] + [4 * near_row[r] + c]
            assert table.index[4 * r + c].tolist() == expected, (r, c)
            dy = ys_[near_row[r]] - ys_[r]
            np.testing.assert_allclose(
                table.dist[4 * r + c], [abs(xs_[j] - xs_[c]) for j in near_x[c]] + [abs(dy)], rtol=1e-5
            )


def test_cosine_search_uses_directions_not_lengths():
    degrees = [0, 10, 30, 70, 150]
    lengths = [1.0, 100.0, 1.0, 0.01, 5.0]  # lengths that would scramble an l2 order
    vectors = torch.tensor(
        [[r * math.cos(math.radians(a)), r * math.sin(math.radians(a))] for a, r in zip(degrees, lengths)]
    )
    table = build_table(vectors, 3, "cosine", "exact", CPU)
    expected = [[1, 2, 3], [0, 2, 3], [1, 0, 3], [2, 1, 0], [3, 2, 1]]
    np.testing.assert_array_equal(table.index, expected)
    gaps = [[abs(degrees[j] - degrees[i]) for j in row] for i, row in enumerate(expected)]
    np.testing.assert_allclose(table.dist, 1 - np.cos(np.radians(gaps)), atol=1e-5)
    assert table.metric == "cosine"
    assert build_table(vectors, 3, "l2", "exact", CPU).index[0].tolist() != expected[0]  # l2 would differ


def test_drop_self_with_duplicated_points():
    # rows 0 and 1 identical, rows 2, 3, 4 identical: faiss may list a twin before the row itself
    points = np.array([[0, 0], [0, 0], [5, 5], [5, 5], [5, 5], [1, 0], [9, 9]], dtype=np.float32)
    for k in (1, 2, 3):
        table = build_table(torch.from_numpy(points), k, "l2", "exact", CPU)
        assert table.index.shape == (7, k) and table.dist.shape == (7, k)
        for row in range(7):
            assert row not in table.index[row].tolist()
        assert table.index[0, 0] == 1 and table.index[1, 0] == 0 and table.dist[0, 0] == pytest.approx(0, abs=1e-3)
        for row in (2, 3, 4):
            expected = {2, 3, 4} - {row}
            assert set(table.index[row, : min(k, 2)].tolist()) <= expected
        if k >= 2:
            for row in (2, 3, 4):
                assert set(table.index[row, :2].tolist()) == {2, 3, 4} - {row}
    # directly: self listed first, self listed later, self missing (pushed out by twins) -> K columns, never self
    found = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 3], [4, 1, 0]])
    dist = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0], [0, 1, 2]], dtype=np.float32)
    index, d = _drop_self(found, dist, 2)
    assert index.dtype == np.int32 and d.dtype == np.float32
    np.testing.assert_array_equal(index, [[1, 2], [0, 2], [0, 1], [4, 1]])
    np.testing.assert_array_equal(d, [[0, 1], [0, 1], [0, 0], [0, 1]])


def test_torch_exact_matches_faiss_exact():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(700, 12)).astype(np.float32)
    vectors = torch.from_numpy(x)
    for metric in ("l2", "cosine"):
        prepared = search._prepare(vectors, metric)
        t_idx, t_dist = torch_exact(prepared, 9, metric, CPU, chunk=128)  # several chunks, a ragged last one
        f_idx, f_dist = faiss_exact(prepared, prepared, 9, metric)
        assert t_idx.shape == f_idx.shape == (700, 9)
        assert (t_idx[:, 0] == np.arange(700)).all() and (f_idx[:, 0] == np.arange(700)).all()
        t_idx, t_dist = _drop_self(t_idx, t_dist, 8)
        f_idx, f_dist = _drop_self(f_idx, f_dist, 8)
        np.testing.assert_allclose(t_dist, f_dist, atol=1e-4)
        # indices agree wherever the order is not a near-tie (float32 distance errors are ~1e-6)
        clear = (np.diff(f_dist, axis=1) > 1e-4).all(axis=1)
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(t_idx[clear], f_idx[clear])
        # and the distances are the true ones (float64 brute force)
        x64 = prepared.astype(np.float64)
        rows = np.arange(700)[:, None]
        true = (
            np.linalg.norm(x64[rows] - x64[f_idx], axis=2)
            if metric == "l2"
            else 1 - np.einsum("nd,nkd->nk", x64, x64[f_idx])
        )
        np.testing.assert_allclose(f_dist, true, atol=1e-4)


def test_hnsw_recall_and_exact_recall():
    x = np.random.default_rng(2).normal(size=(3000, 16)).astype(np.float32)
    vectors = torch.from_numpy(x)
    approx = build_table(vectors, 10, "l2", "hnsw", CPU)
    assert approx.method == "hnsw" and approx.index.shape == (3000, 10)
    assert approx.recall is not None and 0.9 <= approx.recall <= 1.0
    assert not (approx.index == np.arange(3000)[:, None]).any()
    exact = build_table(vectors, 10, "l2", "exact", CPU)
    assert exact.recall is None
    assert recall_at_k(exact.index, x, 10, "l2") == 1.0
    # the recall is measured, not assumed: scrambling half of each row halves it
    broken = exact.index.copy()
    broken[:, 5:] = (broken[:, 5:] + 1 + np.arange(3000)[:, None]) % 3000
    assert recall_at_k(broken, x, 10, "l2") == pytest.approx(0.5, abs=0.02)
    # auto: exact below the threshold
    assert build_table(vectors[:200], 3, "l2", "auto", CPU).method == "exact-faiss"


def test_build_table_refuses_k_of_at_least_n():
    vectors = torch.randn(6, 3, generator=gen())
    for k in (6, 7):
        with pytest.raises(ValueError, match="k="):
            build_table(vectors, k, "l2", "exact", CPU)
    assert build_table(vectors, 5, "l2", "exact", CPU).index.shape == (6, 5)


# =========================================================================== cache
def test_neighbor_table_builds_then_reads_back(tmp_path):
    vectors = torch.randn(300, 8, generator=gen(3))
    first = neighbor_table(vectors, "emb1", 6, "l2", "exact", tmp_path, CPU)
    assert first.cached is False and first.path == tmp_path / "neighbors" / "emb1-l2-exact-K6.npz"
    assert first.path.is_file()
    second = neighbor_table(vectors, "emb1", 6, "l2", "exact", tmp_path, CPU)
    assert second.cached is True and second.path == first.path
    np.testing.assert_array_equal(second.index, first.index)
    np.testing.assert_array_equal(second.dist, first.dist)
    assert second.index.dtype == np.int32 and second.dist.dtype == np.float32
    assert second.method == first.method == "exact-faiss" and second.metric == "l2" and second.recall is None
    np.testing.assert_array_equal(first.index, build_table(vectors, 6, "l2", "exact", CPU).index)


def test_cached_larger_table_serves_smaller_k_without_building(tmp_path, monkeypatch):
    vectors = torch.randn(200, 5, generator=gen(4))
    big = neighbor_table(vectors, "emb", 8, "l2", "exact", tmp_path, CPU)

    def no_build(*args, **kwargs):
        raise AssertionError("built a table that the cache should have served")

    monkeypatch.setattr(search, "build_table", no_build)
    small = neighbor_table(vectors, "emb", 3, "l2", "exact", tmp_path, CPU)
    assert small.cached is True and small.k == 3 and small.path == big.path
    np.testing.assert_array_equal(small.index, big.index[:, :3])
    np.testing.assert_array_equal(small.dist, big.dist[:, :3])
    assert sorted(p.name for p in (tmp_path / "neighbors").iterdir()) == ["emb-l2-exact-K8.npz"]
    monkeypatch.undo()
    # a larger k than any cached table is built and stored beside it; then the smallest sufficient one serves
    bigger = neighbor_table(vectors, "emb", 12, "l2", "exact", tmp_path, CPU)
    assert bigger.cached is False and bigger.path.name == "emb-l2-exact-K12.npz"
    np.testing.assert_array_equal(bigger.index[:, :8], big.index)
    assert neighbor_table(vectors, "emb", 5, "l2", "exact", tmp_path, CPU).path == big.path
    assert neighbor_table(vectors, "emb", 10, "l2", "exact", tmp_path, CPU).path == bigger.path


def test_metric_key_and_index_kind_get_their_own_files(tmp_path):
    vectors = torch.randn(200, 5, generator=gen(5))
    l2 = neighbor_table(vectors, "emb", 4, "l2", "exact", tmp_path, CPU)
    cos = neighbor_table(vectors, "emb", 4, "cosine", "exact", tmp_path, CPU)
    other = neighbor_table(vectors * 3 + 1, "other", 4, "l2", "exact", tmp_path, CPU)
    hnsw = neighbor_table(vectors, "emb", 4, "l2", "hnsw", tmp_path, CPU)
    assert not cos.cached and not other.cached and not hnsw.cached
    assert len({l2.path, cos.path, other.path, hnsw.path}) == 4
    assert cos.metric == "cosine" and hnsw.method == "hnsw" and hnsw.recall is not None
    np.testing.assert_allclose(cos.dist, build_table(vectors, 4, "cosine", "exact", CPU).dist)
    again = neighbor_table(vectors, "emb", 4, "l2", "hnsw", tmp_path, CPU)
    assert again.cached and again.method == "hnsw" and again.recall == pytest.approx(hnsw.recall)
    assert neighbor_table(vectors, "emb", 4, "cosine", "exact", tmp_path, CPU).cached
    assert len(list((tmp_path / "neighbors").glob("*.npz"))) == 4


# ======================================================================== statistics
def test_prior_nn_agreement_matches_a_loop():
    rng = np.random.default_rng(6)
    index = rng.integers(0, 50, size=(50, 6))
    labels = rng.integers(0, 3, size=50)
    for k in (1, 4, 6):
        hits = [labels[index[i, j]] == labels[i] for i in range(50) for j in range(k)]
        assert prior_nn_agreement(index, labels, k) == pytest.approx(sum(hits) / len(hits))
    assert prior_nn_agreement(np.array([[1], [0], [3], [2]]), np.array([0, 0, 1, 2]), 1) == 0.5


def test_adaptive_tau_is_the_mean_of_the_first_m_distances():
    dist = np.array([[1.0, 2.0, 10.0], [3.0, 4.0, 20.0]], dtype=np.float32)
    assert adaptive_tau(dist, 1) == pytest.approx(2.0)
    assert adaptive_tau(dist, 2) == pytest.approx(2.5)
    assert adaptive_tau(dist, 3) == pytest.approx(40 / 6)
