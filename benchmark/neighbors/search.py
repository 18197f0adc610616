"""Neighbour search: the N x K table of each image's nearest neighbours in a prior embedding.

The table is built once per (embedding, metric, index) with faiss (or torch matmul + top-k on a GPU
without faiss-GPU; IVF above APPROXIMATE_ABOVE images), cached on disk, and read back for any k it
covers, so a second run with the same prior searches nothing.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmark.progress import progress, say
from benchmark.registry import Registry
from benchmark.rundir import atomic_write_arrays

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
    for start in progress(range(0, len(x), chunk), "neighbours: exact search on the device", unit="blocks"):
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
    say(f"neighbours: {kind} search of {n:,} x {x.shape[1]} embeddings ({metric}) for k={k}")
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
    seconds = time.perf_counter() - started
    say(f"neighbours: {method} table in {seconds:.1f} s" + (f", recall@{k} {recall:.3f}" if recall is not None else ""))
    return NeighborTable(index, dist, metric, method, seconds, False, recall)


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
