"""Neighbour tables (search, cache) and the GPS pair samplers, on data whose right answers are known."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import benchmark.neighbors.search as search
from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.data.base import Split
from benchmark.neighbors import (
    SAMPLING_RULES,
    BallSampler,
    FixedSampler,
    IdentitySampler,
    KnnUniformSampler,
    SameClassSampler,
    adaptive_tau,
    build_sampler,
    build_table,
    faiss_exact,
    neighbor_table,
    prior_nn_agreement,
    recall_at_k,
    torch_exact,
)
from benchmark.neighbors.search import _drop_self
from benchmark.priors import build_prior, embedding_key

CPU = torch.device("cpu")
DRAWS = 20_000
TOL = 0.02


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def frequencies(values: torch.Tensor, candidates) -> dict[int, float]:
    return {int(c): float((values == int(c)).float().mean()) for c in candidates}


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


# ========================================================================= samplers
N_ROWS, K_COLS = 8, 6
# row i lists i+1, i+2, ... (mod 8): never i itself, all distinct
TABLE = torch.tensor([[(i + j) % N_ROWS for j in range(1, K_COLS + 1)] for i in range(N_ROWS)])


def test_knn_uniform_draws_uniformly_among_the_first_k():
    k = 4
    sampler = SAMPLING_RULES.get("knn-uniform").build(TABLE, torch.zeros(N_ROWS, K_COLS), k, 0.0, False)
    assert isinstance(sampler, KnnUniformSampler)
    anchors = torch.full((DRAWS,), 3, dtype=torch.long)
    drawn = sampler(anchors, gen(0))
    assert drawn.shape == anchors.shape and drawn.dtype == torch.long
    freq = frequencies(drawn, TABLE[3, :k])
    assert sum(freq.values()) == 1.0  # only the first k columns
    for f in freq.values():
        assert abs(f - 1 / k) < TOL
    # a batch of many anchors: each positive is one of its own anchor's first k neighbours, never itself
    anchors = torch.randint(0, N_ROWS, (DRAWS,), generator=gen(1))
    drawn = sampler(anchors, gen(2))
    assert ((TABLE[anchors, :k] == drawn[:, None]).any(dim=1)).all()
    assert (drawn != anchors).all()
    # deterministic given the seed, different with another
    assert torch.equal(sampler(anchors, gen(7)), sampler(anchors, gen(7)))
    assert not torch.equal(sampler(anchors, gen(7)), sampler(anchors, gen(8)))


def test_knn_uniform_with_include_self():
    k = 4
    sampler = KnnUniformSampler(TABLE, k, include_self=True)
    drawn = sampler(torch.full((DRAWS,), 5, dtype=torch.long), gen(0))
    freq = frequencies(drawn, [5, *TABLE[5, :k].tolist()])
    assert sum(freq.values()) == pytest.approx(1.0)
    for f in freq.values():
        assert abs(f - 1 / (k + 1)) < TOL
    anchors = torch.randint(0, N_ROWS, (DRAWS,), generator=gen(1))
    drawn = sampler(anchors, gen(2))
    allowed = torch.cat([TABLE[anchors, :k], anchors[:, None]], dim=1)
    assert (allowed == drawn[:, None]).any(dim=1).all()
    assert abs(float((drawn == anchors).float().mean()) - 1 / (k + 1)) < TOL
    # k = 1: the nearest, or (with include_self) the nearest and the anchor half each
    assert torch.equal(KnnUniformSampler(TABLE, 1)(anchors, gen(3)), TABLE[anchors, 0])
    halves = KnnUniformSampler(TABLE, 1, include_self=True)(anchors, gen(3))
    assert abs(float((halves == anchors).float().mean()) - 0.5) < TOL


# distances: row 0 has 3 within tau = 0.5 (the third exactly at tau), row 1 none, row 2 all of its first k
DIST = torch.tensor(
    [
        [0.1, 0.2, 0.5, 0.9, 1.5, 2.0],
        [0.7, 0.8, 0.9, 1.0, 1.1, 1.2],
        [0.1, 0.1, 0.2, 0.3, 0.4, 0.45],
        [0.0, 0.6, 0.6, 0.6, 0.7, 0.8],
    ]
    + [[0.1 * (j + 1) for j in range(K_COLS)]] * (N_ROWS - 4)
)
TAU, K_BALL = 0.5, 4


def test_radius_sampler_draws_uniformly_inside_the_ball():
    sampler = SAMPLING_RULES.get("radius").build(TABLE, DIST, K_BALL, TAU, False)
    assert isinstance(sampler, BallSampler)
    expected = {0: TABLE[0, :3].tolist(), 1: [1], 2: TABLE[2, :4].tolist(), 3: TABLE[3, :1].tolist()}
    for anchor, candidates in expected.items():
        drawn = sampler(torch.full((DRAWS,), anchor, dtype=torch.long), gen(anchor))
        assert drawn.shape == (DRAWS,) and drawn.dtype == torch.long
        freq = frequencies(drawn, candidates)
        assert sum(freq.values()) == pytest.approx(1.0), (anchor, freq)
        for f in freq.values():
            assert abs(f - 1 / len(candidates)) < TOL, (anchor, freq)
    # a mixed batch: every positive is in its anchor's ball, or the anchor when the ball is empty
    anchors = torch.randint(0, N_ROWS, (DRAWS,), generator=gen(9))
    drawn = sampler(anchors, gen(10))
    inside = (DIST[anchors, :K_BALL] <= TAU) & (TABLE[anchors, :K_BALL] == drawn[:, None])
    assert torch.where(anchors == 1, drawn == 1, inside.any(dim=1)).all()
    assert torch.equal(sampler(anchors, gen(11)), sampler(anchors, gen(11)))
    assert not torch.equal(sampler(anchors, gen(11)), sampler(anchors, gen(12)))


def test_radius_sampler_with_include_self():
    sampler = SAMPLING_RULES.get("radius").build(TABLE, DIST, K_BALL, TAU, True)
    expected = {0: [0, *TABLE[0, :3].tolist()], 1: [1], 2: [2, *TABLE[2, :4].tolist()], 3: [3, TABLE[3, 0].item()]}
    for anchor, candidates in expected.items():
        drawn = sampler(torch.full((DRAWS,), anchor, dtype=torch.long), gen(anchor))
        freq = frequencies(drawn, candidates)
        assert sum(freq.values()) == pytest.approx(1.0), (anchor, freq)
        for f in freq.values():
            assert abs(f - 1 / len(candidates)) < TOL, (anchor, freq)
    # the constructor directly, with a mask that is not a prefix
    within = torch.tensor([[False, True, False, True]] * N_ROWS)
    direct = BallSampler(TABLE[:, :4], within)
    drawn = direct(torch.zeros(DRAWS, dtype=torch.long), gen(4))
    freq = frequencies(drawn, [TABLE[0, 1].item(), TABLE[0, 3].item()])
    assert sum(freq.values()) == pytest.approx(1.0) and all(abs(f - 0.5) < TOL for f in freq.values())


def test_farthest_in_ball_is_the_farthest_neighbour_within_tau():
    for include_self in (False, True):
        sampler = SAMPLING_RULES.get("farthest-in-ball").build(TABLE, DIST, K_BALL, TAU, include_self)
        assert isinstance(sampler, FixedSampler)
        anchors = torch.arange(N_ROWS).repeat(3)
        drawn = sampler(anchors, gen(0))
        assert drawn.dtype == torch.long and drawn.shape == anchors.shape
        # row 0: column 2 (exactly at tau); row 1: none -> itself; row 2: column k-1 (not the 6th,
        # although it is within tau); row 3: column 0; rows 4..: 0.1..0.5 -> column 4 is beyond k, so column 3
        expected = torch.tensor([TABLE[0, 2], 1, TABLE[2, 3], TABLE[3, 0]] + [TABLE[r, 3] for r in range(4, N_ROWS)])
        assert torch.equal(drawn, expected.repeat(3))
        assert torch.equal(sampler(anchors, gen(1)), drawn)
    tiny = SAMPLING_RULES.get("farthest-in-ball").build(TABLE, DIST, K_BALL, 0.01, False)
    assert torch.equal(tiny(torch.arange(N_ROWS), gen(0)), torch.tensor([0, 1, 2, TABLE[3, 0], 4, 5, 6, 7]))


LABELS = torch.tensor([0, 1, 0, 4, 1, 0, 2, 0, 1, 4, 2])  # class 0: 4, 1: 3, 2: 2, 3: none, 4: 2


def test_same_class_sampler():
    sampler = SameClassSampler(LABELS)
    members = {c: torch.nonzero(LABELS == c).flatten().tolist() for c in range(5)}
    for anchor in range(len(LABELS)):
        others = [m for m in members[int(LABELS[anchor])] if m != anchor]
        drawn = sampler(torch.full((DRAWS,), anchor, dtype=torch.long), gen(anchor))
        assert drawn.dtype == torch.long and drawn.shape == (DRAWS,)
        freq = frequencies(drawn, others)
        assert sum(freq.values()) == pytest.approx(1.0), (anchor, freq)
        for f in freq.values():
            assert abs(f - 1 / len(others)) < TOL, (anchor, freq)
    anchors = torch.randint(0, len(LABELS), (DRAWS,), generator=gen(1))
    drawn = sampler(anchors, gen(2))
    assert (LABELS[drawn] == LABELS[anchors]).all() and (drawn != anchors).all()
    assert torch.equal(sampler(anchors, gen(3)), sampler(anchors, gen(3)))
    assert not torch.equal(sampler(anchors, gen(3)), sampler(anchors, gen(4)))
    # a singleton class: the anchor itself
    singleton = SameClassSampler(torch.tensor([0, 0, 1, 0, 2, 2]))
    assert (singleton(torch.full((100,), 2, dtype=torch.long), gen(0)) == 2).all()
    out = singleton(torch.tensor([0, 2, 4, 5, 2]), gen(0))
    assert out[1] == 2 and out[4] == 2 and out[2] == 5 and out[3] == 4 and out[0] in (1, 3)


def test_identity_sampler():
    anchors = torch.tensor([4, 0, 7, 7, 2])
    assert torch.equal(IdentitySampler()(anchors, gen(0)), anchors)


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
