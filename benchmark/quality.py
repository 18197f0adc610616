"""Label-free quality of an embedding: RankMe, alignment and uniformity.

Tuning GPS's settings (k, prior, temperature) on labels is a luxury; these need none. RankMe
(Garrido et al., ICML 2023) is the effective rank of the features; alignment and uniformity (Wang and
Isola, ICML 2020) say how close two augmented views of an image land and how evenly the images
spread on the unit sphere.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.augment import SOLO_CIFAR_ASYMMETRIC, AugmentParams, BatchAugment

RANKME_EPS = 1e-7  # RankMe's epsilon, added to each normalised singular value (Garrido et al., eq. 1)
# The views alignment and uniformity are measured on: one fixed pipeline for every run (the SimCLR/BYOL
# recipe's crop, flip, jitter and grayscale: solo-learn's asymmetric file, first view), so that runs
# trained with different augmentations are measured alike, from a fixed seed.
QUALITY_VIEW = AugmentParams(**SOLO_CIFAR_ASYMMETRIC.view1)
QUALITY_SEED = 0


def rankme(features: torch.Tensor) -> float:
    """exp(-sum_k p_k log p_k), p_k = sigma_k / ||sigma||_1 + eps, over the singular values sigma of
    the (N, D) feature matrix: 1 for a rank-one embedding, min(N, D) for a perfectly spread one."""
    sigma = torch.linalg.svdvals(features.double())
    p = sigma / sigma.sum() + RANKME_EPS
    return float(torch.exp(-(p * torch.log(p)).sum()))


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """E ||f(x) - f(x')||^alpha over positive pairs (row i of z1 with row i of z2), on unit vectors:
    0 when the views of each image map to one point, 4 when they are antipodal (alpha 2)."""
    a, b = F.normalize(z1.double(), dim=1), F.normalize(z2.double(), dim=1)
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """log E exp(-t ||f(x) - f(y)||^2) over pairs of distinct rows, on unit vectors: 0 when every row
    is one point, lower the more evenly the rows spread (about -4 for many points on a sphere)."""
    x = F.normalize(z.double(), dim=1)
    n = len(x)
    sq = torch.cdist(x, x).pow(2)
    pairs = sq[torch.triu_indices(n, n, offset=1, device=x.device).unbind()]
    return float(torch.logsumexp(-t * pairs, dim=0) - torch.log(torch.tensor(float(len(pairs)), dtype=x.dtype)))


@torch.no_grad()
def view_pairs(
    backbone: nn.Module,
    images: np.ndarray,
    mean,
    std,
    device: torch.device,
    batch_size: int = 512,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features (eval mode) of two QUALITY_VIEW augmentations of every image."""
    augment = BatchAugment(QUALITY_VIEW, mean, std, device, seed=QUALITY_SEED)
    generator = torch.Generator(device=device).manual_seed(QUALITY_SEED)
    was_training = backbone.training
    backbone.eval()
    first, second = [], []
    for start in range(0, len(images), batch_size):
        chunk = torch.as_tensor(images[start : start + batch_size]).to(device)
        views = augment(torch.cat([chunk, chunk]), generator)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            a, b = backbone(views).float().flatten(1).chunk(2)
        first.append(a)
        second.append(b)
    backbone.train(was_training)
    return torch.cat(first), torch.cat(second)


def label_free_quality(
    backbone: nn.Module,
    images: np.ndarray,
    features: torch.Tensor,
    mean,
    std,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """`rankme` of the un-augmented features, `alignment` and `uniformity` of augmented views of the
    same images (uniformity over the first view's features)."""
    z1, z2 = view_pairs(backbone, images, mean, std, device, autocast_dtype=autocast_dtype)
    return {"rankme": rankme(features), "alignment": alignment(z1, z2), "uniformity": uniformity(z1)}
