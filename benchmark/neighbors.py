"""Neighbour tables and pair samplers: given a batch of anchor indices, the index of each positive.

Plain SSL pairs an image with itself (two augmentations of one image); GPS pairs it with one of its
nearest neighbours in a prior embedding. The N x K neighbour table is built once per (embedding,
metric, index) with faiss (or torch matmul + top-k on a GPU without faiss-GPU), cached on disk, and
moved to the device; samplers then gather and draw there, with no per-sample Python, so the
training step never waits on the host.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from benchmark.errors import ConfigError
from benchmark.registry import Registry
from benchmark.rundir import atomic_write_arrays, default_results_dir

APPROXIMATE_ABOVE = 200_000  # `knn_index: auto` switches from exact search to IVF above this many images
RECALL_QUERIES = 1000

METRICS: Registry[str] = Registry("metric")
METRICS.register("l2")("squared euclidean distance in the embedding (the paper's)")
METRICS.register("cosine")("1 - cosine similarity")
INDEXES: Registry[str] = Registry("knn_index")
INDEXES.register("auto")(f"exact up to {APPROXIMATE_ABOVE:,} images, IVF above")
INDEXES.register("exact")("faiss IndexFlat (or torch matmul + top-k on a GPU)")
INDEXES.register("ivf")("IVF self-join by matrix products, nprobe chosen for recall@K >= 0.95 (benchmark/ivf.py)")
INDEXES.register("hnsw")("faiss IndexHNSWFlat, recall@K measured against exact search")
APPROXIMATE = ("ivf", "hnsw")


class PairSampler(Protocol):
    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


# ------------------------------------------------------------------------------------- search
def _prepare(vectors: torch.Tensor, metric: str) -> np.ndarray:
    x = vectors.float()
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    return np.ascontiguousarray(x.cpu().numpy())


def _distances(raw: np.ndarray, metric: str) -> np.ndarray:
    """faiss scores -> distances that grow with dissimilarity: euclidean for l2, 1 - cos for cosine."""
    return np.sqrt(np.maximum(raw, 0)) if metric == "l2" else 1.0 - raw


def _drop_self(index: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From K + 1 results per row, drop the row itself (or the last one, where duplicates pushed
    the row out of its own list): exactly K neighbours remain, nearest first."""
    n = len(index)
    keep = index != np.arange(n)[:, None]
    without_self = keep.all(axis=1)
    keep[without_self, k] = False
    return index[keep].reshape(n, k).astype(np.int32), dist[keep].reshape(n, k).astype(np.float32)


def faiss_exact(
    x: np.ndarray, queries: np.ndarray, k: int, metric: str, gpu: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index: faiss.Index = faiss.IndexFlatL2(x.shape[1]) if metric == "l2" else faiss.IndexFlatIP(x.shape[1])
    if gpu:  # faiss-GPU build on a CUDA device
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(x)
    raw, found = index.search(queries, k)
    return found, _distances(raw, metric)


def faiss_hnsw(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexHNSWFlat(x.shape[1], 32, kind)
    index.hnsw.efConstruction = 64
    index.add(x)
    index.hnsw.efSearch = max(64, 4 * k)
    raw, found = index.search(x, k)
    return found, _distances(raw, metric)


@torch.no_grad()
def torch_exact(
    prepared: np.ndarray, k: int, metric: str, device: torch.device, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN by matmul + top-k on the device (the GPU path when faiss-GPU is not installed), of
    vectors as `_prepare` gives them."""
    x = torch.as_tensor(prepared).to(device)
    norms = (x * x).sum(1)
    found, dists = [], []
    for start in range(0, len(x), chunk):
        q = x[start : start + chunk]
        if metric == "l2":
            score = norms[start : start + chunk, None] - 2 * q @ x.T + norms[None, :]
            raw, idx = score.topk(k, dim=1, largest=False)
        else:
            raw, idx = (q @ x.T).topk(k, dim=1)
        found.append(idx.cpu())
        dists.append(raw.float().cpu())
    return torch.cat(found).numpy(), _distances(torch.cat(dists).numpy(), metric)


def recall_at_k(approx: np.ndarray, x: np.ndarray, k: int, metric: str, seed: int = 0) -> float:
    """Mean fraction of the exact K nearest (self excluded) that the approximate table found,
    on RECALL_QUERIES random rows."""
    rows = np.random.default_rng(seed).choice(len(x), size=min(RECALL_QUERIES, len(x)), replace=False)
    exact, _ = faiss_exact(x, x[rows], k + 1, metric)
    hits = 0
    for row, truth in zip(rows, exact):
        truth = [t for t in truth if t != row][:k]
        hits += len(set(truth) & set(approx[row].tolist()))
    return hits / (len(rows) * k)


@dataclass
class NeighborTable:
    index: np.ndarray  # (N, K) int32, nearest first, self excluded
    dist: np.ndarray  # (N, K) float32
    metric: str
    method: str  # exact-faiss, exact-faiss-gpu, exact-torch, ivf or hnsw
    seconds: float  # time to build, or to read the cache
    cached: bool
    recall: float | None = None  # recall@K against exact search (approximate indexes only)
    path: Path | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        return self.index.shape[1]


def search_kind(index_kind: str, n: int) -> str:
    """`exact`, `ivf` or `hnsw`: what `knn_index` means for n images."""
    if index_kind == "auto":
        return "ivf" if n > APPROXIMATE_ABOVE else "exact"
    return index_kind


def build_table(vectors: torch.Tensor, k: int, metric: str, index_kind: str, device: torch.device) -> NeighborTable:
    started = time.perf_counter()
    n = len(vectors)
    if k >= n:
        raise ValueError(f"k={k} neighbours asked of only {n} images")
    kind = search_kind(index_kind, n)
    x = _prepare(vectors, metric)
    if kind == "ivf":
        from benchmark.ivf import ivf_self_join

        found, raw, _ = ivf_self_join(torch.as_tensor(x).to(device), k + 1, l2=metric == "l2")
        dist, method = _distances(raw, metric), "ivf"
    elif kind == "hnsw":
        found, dist = faiss_hnsw(x, k + 1, metric)
        method = "hnsw"
    elif device.type == "cuda" and not _faiss_has_gpu():
        found, dist = torch_exact(x, k + 1, metric, device)
        method = "exact-torch"
    else:
        gpu = device.type == "cuda"
        found, dist = faiss_exact(x, x, k + 1, metric, gpu=gpu)
        method = "exact-faiss-gpu" if gpu else "exact-faiss"
    index, dist = _drop_self(found, dist, k)
    recall = recall_at_k(index, x, k, metric) if kind in APPROXIMATE else None
    return NeighborTable(index, dist, metric, method, time.perf_counter() - started, False, recall)


def _faiss_has_gpu() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def neighbor_table(
    vectors: torch.Tensor,
    embedding_key: str,
    k: int,
    metric: str,
    index_kind: str,
    cache_root: Path,
    device: torch.device,
) -> NeighborTable:
    """The table from the cache (any cached table of this embedding, metric and index with at least
    k columns serves), or built and cached under `<embedding key>-<metric>-<index>-K<k>.npz`."""
    started = time.perf_counter()
    kind = search_kind(index_kind, len(vectors))
    directory = Path(cache_root) / "neighbors"
    prefix = f"{embedding_key}-{metric}-{kind}-K"
    for path in sorted(directory.glob(prefix + "*.npz"), key=lambda p: int(p.stem.rsplit("K", 1)[1])):
        if int(path.stem.rsplit("K", 1)[1]) >= k:
            try:
                with np.load(path) as stored:
                    recall = float(stored["recall"]) if "recall" in stored.files else None
                    table = NeighborTable(
                        stored["index"][:, :k],
                        stored["dist"][:, :k],
                        metric,
                        str(stored["method"]),
                        0.0,
                        True,
                        recall,
                        path,
                    )
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                continue  # a damaged cache file: built again below
            table.seconds = time.perf_counter() - started
            return table
    table = build_table(vectors, k, metric, index_kind, device)
    extra = {"recall": np.float64(table.recall)} if table.recall is not None else {}
    table.path = directory / f"{prefix}{k}.npz"
    atomic_write_arrays(table.path, index=table.index, dist=table.dist, method=np.str_(table.method), **extra)
    return table


def prior_nn_agreement(index: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of each image's k nearest neighbours that share its label, averaged over images."""
    return float((labels[index[:, :k]] == labels[:, None]).mean())


def adaptive_tau(dist: np.ndarray, m: int) -> float:
    """The ball radius from the data: mean distance of every image to its m nearest neighbours."""
    return float(dist[:, :m].mean())


# ------------------------------------------------------------------------------------ samplers
class IdentitySampler:
    """Plain SSL (prior none or k = 0): the positive of x is x itself."""

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return anchors


class KnnUniformSampler:
    """The official code's rule: x' uniform among the k nearest neighbours, redrawn at every use;
    with include_self, x itself is a (k+1)-th candidate."""

    def __init__(self, table: torch.Tensor, k: int, include_self: bool = False):
        self.table, self.k, self.include_self = table[:, :k].long(), k, include_self

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        column = torch.randint(0, self.k + self.include_self, anchors.shape, generator=generator, device=anchors.device)
        drawn = self.table[anchors, column.clamp(max=self.k - 1)]
        return torch.where(column == self.k, anchors, drawn) if self.include_self else drawn

    def draw_distinct(self, anchors: torch.Tensor, generator: torch.Generator, m: int) -> torch.Tensor:
        """(B, m): m different candidates per anchor, without replacement (`positives: m`)."""
        from benchmark.positives import distinct_columns

        column = distinct_columns(len(anchors), self.k + self.include_self, m, generator, anchors.device)
        drawn = self.table[anchors[:, None], column.clamp(max=self.k - 1)]
        return torch.where(column == self.k, anchors[:, None], drawn) if self.include_self else drawn


class BallSampler:
    """`radius`: x' uniform among the neighbours within distance tau (of the k nearest); x itself
    when none is (and as one more candidate with include_self)."""

    def __init__(self, table: torch.Tensor, within: torch.Tensor, include_self: bool = False):
        self.table = table.long()
        self.cumulative = within.long().cumsum(dim=1)
        self.inside = within.sum(dim=1)
        self.include_self = include_self

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        inside = self.inside[anchors]
        candidates = inside + self.include_self
        rank = (torch.rand(anchors.shape, generator=generator, device=anchors.device) * candidates).long()
        column = (self.cumulative[anchors] <= rank[:, None]).sum(dim=1)  # the (rank+1)-th column within tau
        drawn = self.table[anchors, column.clamp(max=self.table.shape[1] - 1)]
        return torch.where(rank >= inside, anchors, drawn)


class FixedSampler:
    """A fixed positive per image (the paper's `farthest-in-ball`: the farthest neighbour within tau)."""

    def __init__(self, positives: torch.Tensor):
        self.positives = positives.long()

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.positives[anchors]


class SameClassSampler:
    """The oracle: x' uniform among the other images of x's class (uses labels: an upper bound)."""

    def __init__(self, labels: torch.Tensor):
        labels = labels.long()
        self.labels = labels
        self.order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        self.counts = counts
        self.starts = counts.cumsum(0) - counts
        self.rank = torch.empty_like(self.order)
        self.rank[self.order] = torch.arange(len(labels), device=labels.device)

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cls = self.labels[anchors]
        count, start = self.counts[cls], self.starts[cls]
        own = self.rank[anchors] - start
        pick = (torch.rand(anchors.shape, generator=generator, device=anchors.device) * (count - 1)).long()
        pick = pick + (pick >= own).long()  # skip the anchor itself
        pick = torch.where(count > 1, pick, own)
        return self.order[start + pick]


SamplerBuilder = Callable[..., PairSampler]


@dataclass(frozen=True)
class SamplingRule:
    """How x' is drawn from the neighbour table: `build(table, dist, k, tau, include_self)` gives the
    sampler; `needs_radius`: the rule uses tau (so adaptive tau needs tau_neighbors columns);
    `distinct_positives`: with `positives: m` its sampler draws m different ones among its k (+ self)
    candidates (`draw_distinct`), so m may not exceed them (benchmark/positives.py)."""

    build: SamplerBuilder
    needs_radius: bool
    distinct_positives: bool = False


SAMPLING_RULES: Registry[SamplingRule] = Registry("sampling rule")


def sampling_rule(
    name: str, needs_radius: bool, distinct_positives: bool = False
) -> Callable[[SamplerBuilder], SamplerBuilder]:
    """Register a builder as the sampling rule `name`."""

    def add(build: SamplerBuilder) -> SamplerBuilder:
        SAMPLING_RULES.register(name)(SamplingRule(build, needs_radius, distinct_positives))
        return build

    return add


@sampling_rule("knn-uniform", needs_radius=False, distinct_positives=True)
def _knn_uniform(table: torch.Tensor, dist: torch.Tensor, k: int, tau: float | None, include_self: bool) -> PairSampler:
    return KnnUniformSampler(table, k, include_self)


@sampling_rule("radius", needs_radius=True)
def _radius(table: torch.Tensor, dist: torch.Tensor, k: int, tau: float, include_self: bool) -> PairSampler:
    return BallSampler(table[:, :k], dist[:, :k] <= tau, include_self)


@sampling_rule("farthest-in-ball", needs_radius=True)
def _farthest(table: torch.Tensor, dist: torch.Tensor, k: int, tau: float, include_self: bool) -> PairSampler:
    within = dist[:, :k] <= tau
    last = within.long().cumsum(dim=1).argmax(dim=1)  # first column reaching the final count = farthest inside
    rows = torch.arange(len(table), device=table.device)
    return FixedSampler(torch.where(within.any(dim=1), table[rows, last].long(), rows))


# ------------------------------------------------------------------------------- from a config
@dataclass
class GPSSetup:
    """A run's sampler and what it cost and found (reported in result.json and `gpsbench prior`)."""

    sampler: PairSampler
    prior_nn_agreement: float | None = None
    report: dict = field(default_factory=dict)


def build_sampler(
    config, data, device: torch.device, cache_root: Path | None = None, results_dir: Path | None = None
) -> GPSSetup:
    """The pair sampler of a run: identity for plain SSL, the prior's own for a prior that needs no k
    (the oracle's same-class draw), else the rule over the prior's cached neighbour table."""
    if not config.is_gps:
        return GPSSetup(IdentitySampler())
    from benchmark.data import default_data_dir
    from benchmark.priors import PriorContext, build_prior, prior_embeddings

    results_dir = Path(results_dir or default_results_dir())
    prior = build_prior(config.prior, config.prior_args, PriorContext(results_dir))
    if not prior.needs_k:
        sampler, agreement = prior.positives(data, device)
        return GPSSetup(sampler, agreement, {"prior": config.prior + (" (uses labels)" if prior.uses_labels else "")})
    rule = SAMPLING_RULES.get(config.sampling)
    width = max(config.k, config.tau_neighbors if rule.needs_radius else 0)  # adaptive tau reads m columns
    n_images = len(data.pretrain)  # the table covers every image pretraining sees
    if width >= n_images:
        asked = f"k={config.k}" + (f" (tau_neighbors={config.tau_neighbors})" if width > config.k else "")
        raise ConfigError(
            f"{asked} asks for {width} neighbours of each of the {n_images} training images of "
            f"{config.dataset}; valid: k from 1 to {n_images - 1}"
        )
    cache_root = Path(cache_root or Path(config.data_dir or default_data_dir()) / "cache")
    embedding = prior_embeddings(prior, config.prior, data, cache_root, device)
    table = neighbor_table(embedding.vectors, embedding.key, width, config.metric, config.knn_index, cache_root, device)
    tau = None
    if rule.needs_radius:
        tau = config.tau if config.tau is not None else adaptive_tau(table.dist, config.tau_neighbors)
    index_t = torch.as_tensor(table.index, device=device)
    dist_t = torch.as_tensor(table.dist, device=device)
    sampler = rule.build(index_t, dist_t, config.k, tau, config.include_self)
    agreement = prior_nn_agreement(table.index, data.pretrain.labels, config.k)
    report = {
        "prior": config.prior,
        "embedding_key": embedding.key,
        "embedding_dim": int(embedding.vectors.shape[1]),
        "embedding_seconds": embedding.seconds,
        "embedding_cached": embedding.cached,
        "table_seconds": table.seconds,
        "table_cached": table.cached,
        "table_method": table.method,
        "table_recall": table.recall,
        "tau": tau,
    }
    return GPSSetup(sampler, agreement, report)
