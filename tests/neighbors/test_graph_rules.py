"""The official code's cluster and hop rules (benchmark/neighbors/graph_rules.py): each rule's candidate
sets against a slow, direct implementation of its definition on a small k-NN table, the draws against
the candidate sets, their settings checked at config time, and each built from a config on real data."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.neighbors import SAMPLING_RULES
from benchmark.neighbors.graph_rules import (
    HopsArgs,
    KMeansArgs,
    LouvainArgs,
    candidate_report,
    first_in_cluster,
    hop_lists,
    kmeans_labels,
    louvain_labels,
)
from benchmark.pairing import build_sampler
from tests.neighbors.draws import CPU, gen

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def points():
    """40 points in 4 loose blobs in 2-d, and their exact 6-NN table (self excluded)."""
    rng = np.random.default_rng(3)
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=np.float64)
    x = np.concatenate([c + rng.normal(0, 1.5, (10, 2)) for c in centres])
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    table = np.argsort(d2, axis=1, kind="stable")[:, :6]
    return x.astype(np.float32), table.astype(np.int32), np.repeat(np.arange(4), 10)


def lists_of(sampler) -> list[set[int]]:
    members, counts = sampler.candidate_lists()
    return [set(c.tolist()) for c in np.split(members, np.cumsum(counts)[:-1])]


def build(rule: str, table: np.ndarray, k: int, args, **inputs):
    t = torch.as_tensor(table)
    return SAMPLING_RULES.get(rule).build(t, torch.zeros(t.shape), k, None, False, args=args, **inputs)


def assert_draws_within(sampler, candidates: list[set[int]]):
    anchors = torch.arange(len(candidates)).repeat(200)
    drawn = sampler(anchors, gen(0)).numpy()
    seen: list[set[int]] = [set() for _ in candidates]
    for a, d in zip(anchors.tolist(), drawn.tolist()):
        assert d in candidates[a]
        seen[a].add(d)
    assert all(len(s) == len(c) for s, c in zip(seen, candidates) if len(c) <= 8)  # 200 draws each: all seen


# ------------------------------------------------------------------ hops: walks of exactly h + 1 steps
def walks(table: np.ndarray, k: int, start: int, steps: int) -> set[int]:
    """Where walks of exactly `steps` steps along the directed k-NN edges end, one step at a time."""
    here = {start}
    for _ in range(steps):
        here = {int(j) for i in here for j in table[i, :k]}
    return here


@pytest.mark.parametrize("k, hops", [(3, 1), (2, 2), (6, 1)])
def test_hop_candidates_are_the_ends_of_walks_of_h_plus_one_steps(points, k, hops):
    _, table, _ = points
    slow = [walks(table, k, i, hops + 1) for i in range(len(table))]
    assert [set(c.tolist()) for c in hop_lists(table, k, hops)] == slow
    sampler = build("hops", table, k, HopsArgs(hops))
    assert lists_of(sampler) == slow
    assert_draws_within(sampler, slow)


def test_include_self_adds_the_anchor_to_the_hop_candidates(points):
    _, table, _ = points
    t = torch.as_tensor(table)
    sampler = SAMPLING_RULES.get("hops").build(t, torch.zeros(t.shape), 2, None, True, args=HopsArgs(1))
    assert lists_of(sampler) == [walks(table, 2, i, 2) | {i} for i in range(len(table))]


# ------------------------------------------------------------------ k-means: the first neighbour's cluster
def test_kmeans_candidates_are_the_first_k_in_the_first_neighbours_cluster(points):
    x, table, _ = points
    labels = kmeans_labels(x, 4)
    assert labels.shape == (40,) and set(labels.tolist()) <= set(range(4))
    k = 3
    slow = []
    for i in range(len(table)):
        cluster = labels[table[i, 0]]
        slow.append({int(j) for j in [j for j in table[i] if labels[j] == cluster][:k]})
    within = first_in_cluster(table, labels, k)
    assert [set(row[mask].tolist()) for row, mask in zip(table, within)] == slow
    sampler = build("kmeans-cluster", table, k, KMeansArgs(clusters=4, pool=6), vectors=x)
    assert lists_of(sampler) == slow
    assert_draws_within(sampler, slow)
    # faiss's k-means as the official code runs it is deterministic (its default seed)
    assert (kmeans_labels(x, 4) == labels).all()


# ------------------------------------------------------------------ Louvain: the anchor's whole community
def test_louvain_candidates_are_the_anchors_whole_community(points):
    _, table, _ = points
    k, seed = 3, 7
    graph = nx.Graph()  # the official code's graph, written out edge by edge
    graph.add_nodes_from(range(len(table)))
    for i, row in enumerate(table):
        graph.add_edge(i, i)
        for j in row[:k]:
            graph.add_edge(i, int(j))
    communities = nx.community.louvain_communities(graph, seed=seed)
    slow = [next(set(c) for c in communities if i in c) for i in range(len(table))]
    labels = louvain_labels(table, k, seed)
    assert [set(np.flatnonzero(labels == labels[i]).tolist()) for i in range(len(table))] == slow
    sampler = build("louvain-community", table, k, LouvainArgs(), seed=seed)
    assert lists_of(sampler) == slow
    assert_draws_within(sampler, slow)


def test_candidate_report_counts_agreement_and_the_anchor_itself():
    sampler = build("hops", np.array([[1], [0], [0]], dtype=np.int32), 1, HopsArgs(1))  # 0->1->0, 1->0->1, 2->0->1
    labels = np.array([0, 0, 1])
    assert lists_of(sampler) == [{0}, {1}, {1}]
    assert candidate_report(sampler, labels) == {
        "candidates": 1.0,
        "candidate_agreement": pytest.approx(2 / 3),
        "candidate_self": pytest.approx(2 / 3),
    }


# ------------------------------------------------------------------ settings and wiring
@pytest.mark.parametrize(
    "values, message",
    [
        ({"sampling": "kmeans-cluster"}, "needs sampling_args.clusters >= 2"),
        ({"sampling": "hops", "sampling_args": {"hop": 2}}, "unknown sampling_args key for sampling 'hops' 'hop'"),
        ({"sampling": "hops", "sampling_args": {"hops": 0}}, "sampling_args.hops must be >= 1"),
        ({"sampling_args": {"clusters": 3}}, "sampling 'knn-uniform' takes no sampling_args"),
        (
            {"sampling": "kmeans-cluster", "sampling_args": {"clusters": 5}, "refresh_every": 2},
            "is not rebuilt at a refresh",
        ),
    ],
)
def test_bad_rule_settings_are_refused_before_any_work(values, message):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"prior": "pixel", "k": 5, "epochs": 4, **values})
    assert message in str(err.value)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize(
    "sampling, args",
    [("knn-uniform", {}), ("kmeans-cluster", {"clusters": 10}), ("louvain-community", {}), ("hops", {"hops": 1})],
)
def test_each_rule_from_a_config_on_digits_reports_its_candidates(digits, tmp_path, sampling, args):
    config = RunConfig.from_dict({"prior": "pixel", "k": 5, "sampling": sampling, "sampling_args": args})
    setup = build_sampler(config, digits, CPU, cache_root=tmp_path / "cache", results_dir=tmp_path)
    report = setup.report
    assert 0.5 < report["candidate_agreement"] <= 1.0
    if sampling == "knn-uniform":  # its candidates are the table's k: the prior's agreement
        assert report["candidates"] == 5 and report["candidate_agreement"] == pytest.approx(setup.prior_nn_agreement)
    if sampling == "kmeans-cluster":  # the pool is every other image (1,436 < 2,047)
        assert setup.table.index.shape[1] == len(digits.pretrain) - 1 and 1 <= report["candidates"] <= 5
    anchors = torch.arange(len(digits.pretrain))
    assert setup.sampler(anchors, gen(0)).shape == anchors.shape


def test_a_ball_lists_x_itself_where_no_neighbour_is_inside_or_with_include_self():
    from benchmark.neighbors import BallSampler

    table = torch.tensor([[1, 2], [0, 2], [0, 1]])
    within = torch.tensor([[True, False], [False, False], [True, True]])
    assert lists_of(BallSampler(table, within)) == [{1}, {1}, {0, 1}]
    assert lists_of(BallSampler(table, within, include_self=True)) == [{1, 0}, {1}, {0, 1, 2}]
