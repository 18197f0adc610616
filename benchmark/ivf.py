"""Approximate k-NN table of a whole embedding (every point against every point), for datasets too
large for exact search (1M x 512 exact is 1e15 flops: hours on a CPU).

An inverted-file (IVF) self-join computed list by list: k-means splits the points into `nlist`
lists; each point probes its `nprobe` nearest lists, searched exactly. Instead of scanning lists
query by query (faiss IVF search), all the queries that probe one list are scored against it in
one matrix product, so the work runs at GEMM speed, on the CPU or on a GPU, with no faiss-GPU.

Recall has a closed form here: a true neighbour is found exactly when its list is among the
query's nprobe nearest. So nprobe is chosen from a sample of exact queries as the smallest that
reaches the recall target, before the join runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.progress import progress, say

RECALL_TARGET = 0.95
TUNE_QUERIES = 1000
SCORE_BLOCK = 1 << 22  # elements of one query x list score block (16 MB in float32)
QUERY_BLOCK = 8192  # queries scored against one list at a time


@dataclass(frozen=True)
class IvfPlan:
    nlist: int
    nprobe: int
    sample_recall: float  # recall@k on the tuning sample with this nprobe


def default_nlist(n: int) -> int:
    """About sqrt(n) lists: a query's list scan and the query-centroid scoring cost the same."""
    return max(1, min(n // 39, int(round(math.sqrt(n)))))  # faiss k-means wants >= 39 points per list


def _scores(
    queries: torch.Tensor, points: torch.Tensor, point_norms: torch.Tensor | None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Smaller is nearer: ||p||^2 - 2 q.p for l2 (||q||^2 is the same across a row), -q.p for
    inner products (cosine on normalised vectors). One GEMM, into `out` when given."""
    if point_norms is None:
        return torch.mm(queries, points.T, out=out).neg_()
    return torch.addmm(point_norms[None, :], queries, points.T, alpha=-2, out=out)


def train_centroids(x: torch.Tensor, nlist: int, seed: int) -> torch.Tensor:
    """k-means centroids (faiss, on the CPU) from a sample of 64 points per list."""
    import faiss

    rng = np.random.default_rng(seed)
    sample = x[torch.as_tensor(rng.choice(len(x), size=min(len(x), 64 * nlist), replace=False))]
    kmeans = faiss.Kmeans(x.shape[1], nlist, niter=20, seed=seed, verbose=False)
    kmeans.train(np.ascontiguousarray(sample.float().cpu().numpy()))
    return torch.as_tensor(kmeans.centroids).to(x.device)


@torch.no_grad()
def nearest_lists(x: torch.Tensor, centroids: torch.Tensor, count: int, chunk: int = 16384) -> torch.Tensor:
    """(N, count) the `count` nearest centroids of every point, nearest first (l2)."""
    norms = (centroids * centroids).sum(1)
    return torch.cat([_scores(q, centroids, norms).topk(count, dim=1, largest=False).indices for q in x.split(chunk)])


def choose_nprobe(
    x: torch.Tensor, centroids: torch.Tensor, k: int, l2: bool, target: float, seed: int
) -> tuple[int, float]:
    """The smallest nprobe whose recall@k, estimated on TUNE_QUERIES exact queries, reaches `target`
    with 2 standard errors to spare: a true neighbour is found iff its list ranks below nprobe
    among the query's nearest centroids. Returns nprobe and the sample's recall with it."""
    rng = np.random.default_rng(seed + 1)
    rows = torch.as_tensor(rng.choice(len(x), size=min(TUNE_QUERIES, len(x)), replace=False), device=x.device)
    norms = (x * x).sum(1) if l2 else None
    truth = torch.cat([_exact_block(x, x[block], block, norms, k) for block in rows.split(64)])  # (Q, k)
    truth_lists = nearest_lists(x[truth.reshape(-1)], centroids, 1).view_as(truth)
    order = nearest_lists(x[rows], centroids, len(centroids))  # (Q, nlist): every list, nearest first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(len(centroids), device=x.device).expand_as(order))
    needed = rank.gather(1, truth_lists)  # probes - 1 needed to reach each true neighbour
    hits = torch.zeros_like(order, dtype=torch.float32).scatter_add_(
        1, needed, torch.ones_like(needed, dtype=torch.float32)
    )
    per_query = hits.cumsum(1) / k  # (Q, nlist): each query's recall with nprobe = column + 1
    mean = per_query.mean(0)
    lower = mean - 2 * per_query.std(0) / math.sqrt(len(rows))  # ~97.5% lower bound on the true recall
    reaching = torch.nonzero(lower >= target)
    nprobe = int(reaching[0]) + 1 if len(reaching) else len(centroids)
    return nprobe, float(mean[nprobe - 1])


def _exact_block(
    x: torch.Tensor, queries: torch.Tensor, rows: torch.Tensor, norms: torch.Tensor | None, k: int
) -> torch.Tensor:
    """Exact k nearest of `queries` (which are the rows `rows` of x), self excluded."""
    scores = _scores(queries, x, norms)
    scores[torch.arange(len(rows), device=x.device), rows] = float("inf")
    return scores.topk(k, dim=1, largest=False).indices


# long: one IVF pass (centroids, nprobe, lists, batched search) over tensors the steps share
@torch.no_grad()
def ivf_self_join(
    vectors: torch.Tensor,
    k: int,
    l2: bool,
    nlist: int | None = None,
    nprobe: int | None = None,
    recall_target: float = RECALL_TARGET,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, IvfPlan]:
    """(N, k) neighbour indices and their raw scores (squared l2 distances, or inner products),
    nearest first. Like exact search of x against itself, a row's k include the row itself;
    nprobe (None: chosen for `recall_target`) is tuned on the k - 1 others."""
    x = vectors.float().contiguous()
    n, device = len(x), x.device
    nlist = nlist or default_nlist(n)
    say(f"neighbours: IVF k-means of {min(n, 64 * nlist):,} points into {nlist:,} lists")
    centroids = train_centroids(x, nlist, seed)
    sample_recall = float("nan")
    if nprobe is None:
        nprobe, sample_recall = choose_nprobe(x, centroids, k - 1, l2, recall_target, seed)
        say(f"neighbours: IVF nprobe {nprobe}: recall {sample_recall:.3f} on {min(n, TUNE_QUERIES)} exact queries")
    nprobe = min(nprobe, nlist)
    probes = nearest_lists(x, centroids, nprobe)
    lists = probes[:, 0]
    norms = (x * x).sum(1) if l2 else None

    order = torch.argsort(lists)  # members of each list, contiguous
    starts = torch.cat(
        [torch.zeros(1, dtype=torch.long, device=device), torch.bincount(lists, minlength=nlist).cumsum(0)]
    ).tolist()
    pair_query = torch.arange(n, device=device).repeat_interleave(nprobe)
    pair_list = probes.reshape(-1)
    by_list = torch.argsort(pair_list)
    queries_of = pair_query[by_list]  # queries grouped by the list they probe
    query_starts = torch.cat(
        [torch.zeros(1, dtype=torch.long, device=device), torch.bincount(pair_list, minlength=nlist).cumsum(0)]
    ).tolist()

    best_scores = torch.full((n, k), float("inf"), device=device)
    best_ids = torch.full((n, k), -1, dtype=torch.long, device=device)
    # one score buffer and one query buffer for the whole join: no allocation (and no page faults) per block
    largest_list = max(b - a for a, b in zip(starts, starts[1:]))
    score_buffer = torch.empty(max(SCORE_BLOCK, largest_list), device=device)
    query_buffer = torch.empty(QUERY_BLOCK, x.shape[1], device=device)
    for j in progress(range(nlist), f"neighbours: IVF join, nprobe {nprobe}", unit="lists"):
        members = order[starts[j] : starts[j + 1]]
        if len(members) == 0:
            continue
        points = x[members]
        point_norms = norms[members] if norms is not None else None
        queries = queries_of[query_starts[j] : query_starts[j + 1]]
        take = min(k, len(members))
        rows = max(1, min(QUERY_BLOCK, SCORE_BLOCK // len(members)))
        for block in queries.split(rows):
            q = torch.index_select(x, 0, block, out=query_buffer[: len(block)])
            scores = _scores(q, points, point_norms, out=score_buffer[: len(block) * len(members)].view(len(block), -1))
            scores, where = scores.topk(take, dim=1, largest=False)
            merged_scores = torch.cat([best_scores[block], scores], dim=1)
            merged_ids = torch.cat([best_ids[block], members[where]], dim=1)
            keep_scores, keep = merged_scores.topk(k, dim=1, largest=False)
            best_scores[block], best_ids[block] = keep_scores, merged_ids.gather(1, keep)
    short = int((best_ids < 0).any(dim=1).sum())
    if short:
        raise ValueError(
            f"IVF with {nlist} lists and nprobe={nprobe}: {short} points have fewer than {k} candidates "
            f"in the lists they probe; use knn_index exact for {n} points, or a smaller k"
        )
    if norms is not None:
        raw = (best_scores + norms[:, None]).clamp_min(0)  # squared distances
    else:
        raw = -best_scores  # inner products
    return best_ids.cpu().numpy(), raw.cpu().numpy(), IvfPlan(nlist, nprobe, sample_recall)
