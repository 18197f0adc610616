"""Neighbour-table build times: exact at 50,000 x 512, approximate (IVF) at 1,000,000 x 512.

The embeddings are real images, not random vectors: random Gaussian vectors in 512 dimensions have
all their distances nearly equal, which no index (and no prior) ever meets. Here every vector is
the pixel prior (PCA to 512 dimensions) of one random-resized crop of a training image: a million
distinct views from the dataset at hand, made in chunks, so the pixels never sit in memory at once.
"""

from __future__ import annotations

import time

import numpy as np
import torch

PCA_FIT_VIEWS = 20_000
VIEW_CHUNK = 8192


@torch.no_grad()
def view_embeddings(
    images: np.ndarray, n: int, dim: int = 512, seed: int = 0, device: torch.device | None = None
) -> torch.Tensor:
    """(n, dim) float32 on `device`: random-resized crops (scale 0.08-1, flipped half the time) of
    `images`, flattened, centred and projected onto the top `dim` principal components of the first views."""
    device = device if device is not None else torch.device("cpu")
    from benchmark.augment import AugmentParams, BatchAugment

    size = images.shape[1]
    augment = BatchAugment(AugmentParams(crop=True, flip_p=0.5), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), device)
    generator = torch.Generator(device=device).manual_seed(seed)
    pixels = torch.as_tensor(images).to(device)

    def views(count: int) -> torch.Tensor:
        picks = torch.randint(0, len(pixels), (count,), generator=generator, device=device)
        return augment(pixels[picks], generator).contiguous().flatten(1)

    first = views(min(n, PCA_FIT_VIEWS))
    mean = first.mean(0)
    centred = first - mean
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues: 5x faster than an SVD here
    basis = vectors.flip(1)[:, : min(dim, size * size * 3, len(first))].contiguous()
    out = torch.empty(n, basis.shape[1], device=device)
    out[: len(first)] = centred @ basis
    for start in range(len(first), n, VIEW_CHUNK):
        count = min(VIEW_CHUNK, n - start)
        out[start : start + count] = (views(count) - mean) @ basis
    return out


def knn_figures(images: np.ndarray, device: torch.device, exact_n: int, approx_n: int, k: int = 10) -> dict:
    """Build seconds of the exact table of exact_n views and the IVF table of approx_n views
    (0: skipped), with recall@k of the latter against exact search on sampled queries."""
    from benchmark.neighbors import build_table

    started = time.perf_counter()
    vectors = view_embeddings(images, max(exact_n, approx_n), device=device)
    dim = vectors.shape[1]
    report: dict = {
        "embedding": f"pixel prior (PCA {dim}) of random-resized crops",
        "k": k,
        "embedding_seconds": time.perf_counter() - started,
    }
    exact = build_table(vectors[:exact_n], k, "l2", "exact", device)
    report.update({f"exact_{exact_n}x{dim}_seconds": exact.seconds, "exact_method": exact.method})
    if approx_n:
        approx = build_table(vectors[:approx_n], k, "l2", "ivf", device)
        report.update(
            {
                f"ivf_{approx_n}x{dim}_seconds": approx.seconds,
                f"ivf_{approx_n}x{dim}_recall": approx.recall,
                "ivf_method": approx.method,
            }
        )
    return report
