"""Barlow Twins' loss against its formula (eq. 1-2) and on matrices whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.methods.barlow import barlow_twins_loss

from .reference import TOL, D, N, column_stats, hadamard, rand, rows

pytestmark = pytest.mark.usefixtures("one_thread")


def ref_barlow(z1, z2, lambd, eps=1e-5):
    """Barlow Twins eq. (1)-(2): C_ij = sum_b z1n_bi z2n_bj / N over batch-standardised columns
    (biased variance, BatchNorm's eps); L = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2."""
    standardised = []
    for z in (rows(z1), rows(z2)):
        means, variances = column_stats(z, unbiased=False)
        standardised.append([[(x - m) / math.sqrt(v + eps) for x, m, v in zip(r, means, variances)] for r in z])
    a, b = standardised
    n, d = len(a), len(a[0])
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k][i] * b[k][j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c * c
    return loss


@pytest.mark.parametrize("lambd", [0.0051, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_barlow_loss_matches_reference(lambd, seed):
    z1, z2 = rand(N, D, seed=seed) * 3 + 1, rand(N, D, seed=seed + 30)
    assert barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(ref_barlow(z1, z2, lambd), **TOL)


def test_barlow_loss_zero_for_identical_decorrelated_views_and_lambda_weighting():
    h = hadamard(8)[:, 1:]  # 8 x 7: zero-mean, unit (biased) variance, pairwise orthogonal columns
    assert barlow_twins_loss(h, h, 0.0051).item() == pytest.approx(0.0, abs=1e-6)
    # standardisation removes any per-column affine map with positive scale
    affine = h * torch.arange(1, 8, dtype=torch.float64) + 5.0
    assert barlow_twins_loss(affine, h, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    c = 1 / (1 + 1e-5)  # a unit-variance column standardised with BatchNorm's eps
    # swapping two columns of one view: C_00 = C_11 = 0, C_01 = C_10 = c -> 2 + 2 lambda c^2
    swapped = h[:, [1, 0, 2, 3, 4, 5, 6]]
    for lambd in (0.0, 0.0051, 0.5, 3.0):
        expected = 2 + 2 * lambd * c**2 + 5 * (1 - c) ** 2
        assert barlow_twins_loss(h, swapped, lambd).item() == pytest.approx(expected, rel=1e-6)
    # a negated column: C_00 = -c -> (1 + c)^2 ~ 4, independent of lambda
    negated = h.clone()
    negated[:, 0] *= -1
    expected = (1 + c) ** 2 + 6 * (1 - c) ** 2
    assert barlow_twins_loss(h, negated, 7.0).item() == pytest.approx(expected, rel=1e-6)
