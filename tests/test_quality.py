"""Label-free quality metrics against direct computations on small known matrices."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.quality import alignment, rankme, uniformity


def orthonormal(n: int, r: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_rankme_of_a_rank_r_matrix_with_equal_singular_values_is_r(rank):
    features = orthonormal(50, rank, 0) @ orthonormal(16, rank, 1).T * 7.0  # 50 x 16, rank r, sigma all 7
    assert torch.linalg.matrix_rank(features) == rank
    assert rankme(features) == pytest.approx(rank, rel=1e-4)


def test_rankme_follows_the_entropy_of_the_singular_values():
    u, v = orthonormal(40, 4, 2), orthonormal(10, 4, 3)
    sigma = torch.tensor([8.0, 4.0, 2.0, 2.0], dtype=torch.float64)
    features = u @ torch.diag(sigma) @ v.T
    p = [s / 16.0 + 1e-7 for s in sigma.tolist()] + [1e-7] * 6  # 10 singular values, 6 of them zero
    expected = math.exp(-sum(q * math.log(q) for q in p))
    assert rankme(features) == pytest.approx(expected, rel=1e-6)
    assert 1 < rankme(features) < 4  # uneven values: fewer effective dimensions than the rank
    assert rankme(features * 100) == pytest.approx(rankme(features), rel=1e-9)  # scale-free


def test_alignment_of_known_pairs():
    z = torch.randn(20, 5, generator=torch.Generator().manual_seed(4))
    assert alignment(z, 3 * z) == pytest.approx(0.0, abs=1e-12)  # same direction: aligned
    assert alignment(z, -z) == pytest.approx(4.0)  # antipodal: ||a - b||^2 = 4
    e1, e2 = torch.eye(2)[:1], torch.eye(2)[1:]
    assert alignment(e1, e2) == pytest.approx(2.0)  # orthogonal: ||a - b||^2 = 2
    assert alignment(e1, e2, alpha=1.0) == pytest.approx(math.sqrt(2))


def test_uniformity_on_a_circle_and_of_one_point():
    n = 720
    angles = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    circle = torch.stack([angles.cos(), angles.sin()], dim=1)
    direct = sum(
        math.exp(-2 * ((circle[i] - circle[j]) ** 2).sum().item()) for i in range(0, n, 7) for j in range(n) if i != j
    ) / sum(n - 1 for _ in range(0, n, 7))
    assert uniformity(circle) == pytest.approx(math.log(direct), abs=1e-3)
    # n evenly spaced points: exp(-2 |x - y|^2) = exp(-4) exp(4 cos(theta)), whose mean over n equally
    # spaced angles is exp(-4) I0(4) (I0(4) = 11.3019219521...) up to 2 exp(-4) I_n(4), far below 1e-9;
    # without the n pairs of a point with itself (each exp(0) = 1) the mean is (n I - 1) / (n - 1)
    integral = math.exp(-4) * 11.3019219521
    assert uniformity(circle) == pytest.approx(math.log((n * integral - 1) / (n - 1)), abs=1e-9)
    assert uniformity(torch.ones(10, 3)) == pytest.approx(0.0, abs=1e-12)
    clustered = torch.cat([torch.ones(5, 2), -torch.ones(5, 2)])
    assert uniformity(clustered) < uniformity(torch.ones(10, 2))  # spreading lowers it
