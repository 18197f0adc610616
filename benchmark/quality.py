"""Label-free quality of an embedding: RankMe, alignment and uniformity.

Tuning GPS's settings (k, prior, temperature) on labels is a luxury; these need none. RankMe
(Garrido et al., ICML 2023) is the effective rank of the features; alignment and uniformity (Wang and
Isola, ICML 2020) say how close two augmented views of an image land and how evenly the images
spread on the unit sphere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RANKME_EPS = 1e-7  # RankMe's epsilon, added to each normalised singular value (Garrido et al., eq. 1)


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
