"""The official GPS code's candidate rules that restrict or widen the k nearest by the structure of
the data: clusters (`data.clustering_algo`: k-means, Louvain) and hops on the k-NN graph
(`data.nn_hop`). Each is a sampling rule with its own `sampling_args`; read against the official
code (aarashfeizi/gps-ssl, solo/data/gps_dataset.py `_filter_sim_matrix_by_nnc`, solo/utils/misc.py
`get_clusters`, `get_louvain_clusters_unweighted`), as it defines them:

- `kmeans-cluster`: faiss k-means with `clusters` centroids on the prior's embedding (faiss's
  defaults, as the official code calls it: 25 iterations, seed 1234); of the anchor's `pool` nearest
  neighbours (the official code searches 2,048 with the anchor among them: 2,047), those in the
  cluster of its *first* neighbour, in order, the first k of them. The first neighbour is always one.
- `louvain-community`: networkx's Louvain communities (seed: the run's seed, as the official code's
  `cfg.seed`) of the undirected k-NN graph: an edge from each image to each of its k nearest and to
  itself (the official graph takes k + 1 columns of a search that finds the image first). The
  candidates are the anchor's whole community, the anchor included.
- `hops`: the directed k-NN graph A (i -> each of its k nearest); the candidates of i are the images j
  with (A^(h+1))_ij > 0: reachable by a walk of exactly h + 1 steps (the official code multiplies A
  by itself h times more). h = 1 reaches the neighbours' neighbours, the anchor itself where a
  neighbour has it among its k, and its own neighbours only where a walk of two steps leads back.

Candidate lists are ragged; samplers hold them flat on the device with each anchor's start and
count, and draw uniformly (`positives: m` draws m times, with replacement, as the official code's
`np.random.randint`). Each sampler also gives its candidate lists (`candidate_lists`), from which
`candidate_report` measures their agreement with the labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.errors import ConfigError
from benchmark.neighbors.samplers import BallSampler, PairSampler, sampling_rule

OFFICIAL_POOL = 2047  # the official code's 2,048 searched neighbours, the anchor aside


class CandidateSampler:
    """x' uniform among a ragged candidate list per anchor (flat `members`, per-anchor `starts` and
    `counts`), drawn on the device."""

    def __init__(self, members: torch.Tensor, counts: torch.Tensor):
        self.members, self.counts = members.long(), counts.long()
        self.starts = self.counts.cumsum(0) - self.counts

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        count = self.counts[anchors]
        pick = (torch.rand(anchors.shape, generator=generator, device=anchors.device) * count).long()
        return self.members[self.starts[anchors] + pick.clamp(max=count - 1)]

    def candidate_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """(members flat, counts per anchor), anchors in order."""
        return self.members.cpu().numpy(), self.counts.cpu().numpy()


def ragged(lists: list[np.ndarray], device) -> CandidateSampler:
    counts = np.array([len(c) for c in lists], dtype=np.int64)
    members = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    return CandidateSampler(torch.as_tensor(members, device=device), torch.as_tensor(counts, device=device))


def with_self(lists: list[np.ndarray], include_self: bool) -> list[np.ndarray]:
    """`include_self`: the anchor becomes a candidate where it is not one already."""
    if not include_self:
        return lists
    return [c if i in c else np.append(c, i) for i, c in enumerate(lists)]


def candidate_report(sampler, labels: np.ndarray) -> dict:
    """The candidates of a sampler that lists them: `candidates` (mean count per anchor),
    `candidate_agreement` (mean over anchors of the share of its candidates with its label, the
    anchor itself counted where it is one: the chance a drawn positive shares the label) and
    `candidate_self` (mean share of the candidates that are the anchor). Empty for other samplers."""
    lists = getattr(sampler, "candidate_lists", None)
    if lists is None:
        return {}
    members, counts = lists()
    anchors = np.repeat(np.arange(len(counts)), counts)
    labels = np.asarray(labels)
    same = np.bincount(anchors, weights=labels[members] == labels[anchors], minlength=len(counts))
    own = np.bincount(anchors, weights=members == anchors, minlength=len(counts))
    return {
        "candidates": float(counts.mean()),
        "candidate_agreement": float((same / counts).mean()),
        "candidate_self": float((own / counts).mean()),
    }


# ----------------------------------------------------------------------------- k-means clusters
@dataclass(frozen=True)
class KMeansArgs:
    clusters: int | None = None  # k-means centroids (the official `data.num_clusters`); required
    pool: int = OFFICIAL_POOL  # nearest neighbours searched for the first k in the cluster (at most N - 1)

    def validate(self) -> None:
        if self.clusters is None or self.clusters < 2:
            raise ConfigError(
                f"sampling kmeans-cluster needs sampling_args.clusters >= 2 (k-means centroids), got {self.clusters}"
            )
        if self.pool < 1:
            raise ConfigError(f"sampling_args.pool must be >= 1, got {self.pool}")


def kmeans_labels(vectors: np.ndarray, clusters: int) -> np.ndarray:
    """faiss k-means as the official code runs it (faiss's defaults), each vector's nearest centroid."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if clusters > len(x):
        raise ConfigError(f"sampling_args.clusters={clusters} exceeds the {len(x)} training images")
    kmeans = faiss.Kmeans(x.shape[1], clusters)
    kmeans.train(x)
    return kmeans.index.search(x, 1)[1][:, 0]


def first_in_cluster(table: np.ndarray, cluster: np.ndarray, k: int) -> np.ndarray:
    """(N, pool) mask: the first k columns of each row whose cluster is that of the row's first column."""
    same = cluster[table] == cluster[table[:, :1]]
    return same & (np.cumsum(same, axis=1) <= k)


@sampling_rule(
    "kmeans-cluster", needs_radius=False, params=KMeansArgs, width=lambda k, args: args.pool, inputs=("args", "vectors")
)
def _kmeans_cluster(table, dist, k, tau, include_self, *, args: KMeansArgs, vectors: np.ndarray) -> PairSampler:
    assert args.clusters is not None, "validated: KMeansArgs.validate"
    within = first_in_cluster(table.cpu().numpy(), kmeans_labels(vectors, args.clusters), k)
    return BallSampler(table, torch.as_tensor(within, device=table.device), include_self)


# ----------------------------------------------------------------------------- Louvain communities
@dataclass(frozen=True)
class LouvainArgs:
    resolution: float = 1.0  # networkx's modularity resolution (the official code keeps its default, 1)

    def validate(self) -> None:
        if not self.resolution > 0:
            raise ConfigError(f"sampling_args.resolution must be > 0, got {self.resolution}")


def knn_graph(table: np.ndarray, k: int):
    """The undirected k-NN graph of the official code: i -- each of its k nearest, and i -- i."""
    import networkx as nx

    graph = nx.Graph()
    n = len(table)
    graph.add_nodes_from(range(n))
    graph.add_edges_from((i, i) for i in range(n))
    graph.add_edges_from(zip(np.repeat(np.arange(n), k).tolist(), table[:, :k].ravel().tolist()))
    return graph


def louvain_labels(table: np.ndarray, k: int, seed: int, resolution: float = 1.0) -> np.ndarray:
    """Each image's Louvain community on the k-NN graph (networkx, seeded)."""
    import networkx as nx

    communities = nx.community.louvain_communities(knn_graph(table, k), resolution=resolution, seed=seed)
    labels = np.empty(len(table), dtype=np.int64)
    for number, members in enumerate(communities):
        labels[list(members)] = number
    return labels


def group_lists(labels: np.ndarray) -> list[np.ndarray]:
    """Per image, every image of its group (itself included), in index order."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.unique(labels))
    groups = dict(zip(np.unique(labels).tolist(), np.split(order, bounds[1:])))
    return [groups[label] for label in labels.tolist()]


@sampling_rule("louvain-community", needs_radius=False, params=LouvainArgs, inputs=("args", "seed"))
def _louvain(table, dist, k, tau, include_self, *, args: LouvainArgs, seed: int) -> PairSampler:
    labels = louvain_labels(table.cpu().numpy(), k, seed, args.resolution)
    return ragged(group_lists(labels), table.device)  # the anchor is in its community: include_self adds nothing


# ----------------------------------------------------------------------------- hops
@dataclass(frozen=True)
class HopsArgs:
    hops: int = 1  # h (the official `data.nn_hop`): candidates end walks of h + 1 steps

    def validate(self) -> None:
        if self.hops < 1:
            raise ConfigError(
                f"sampling_args.hops must be >= 1 (0 is the k nearest themselves: knn-uniform), got {self.hops}"
            )


def hop_lists(table: np.ndarray, k: int, hops: int) -> list[np.ndarray]:
    """Per image i, the j with (A^(hops+1))_ij > 0 for the directed k-NN graph A, in index order."""
    from scipy import sparse

    n = len(table)
    adjacency = sparse.csr_matrix(
        (np.ones(n * k, dtype=np.int32), table[:, :k].ravel().astype(np.int64), np.arange(0, n * k + 1, k)),
        shape=(n, n),
    )
    reach = adjacency
    for _ in range(hops):
        reach = (adjacency @ reach).tocsr()
        reach.data[:] = 1  # only whether a walk exists counts: keep the numbers small
    reach.sort_indices()
    return np.split(reach.indices.astype(np.int64), reach.indptr[1:-1])


@sampling_rule("hops", needs_radius=False, params=HopsArgs, inputs=("args",))
def _hops(table, dist, k, tau, include_self, *, args: HopsArgs) -> PairSampler:
    return ragged(with_self(hop_lists(table.cpu().numpy(), k, args.hops), include_self), table.device)
