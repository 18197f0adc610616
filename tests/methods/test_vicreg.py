"""VICReg's loss against a slow loop over its three terms, and where each term vanishes."""

from __future__ import annotations

import math

import pytest

from benchmark.errors import ConfigError
from benchmark.methods import METHODS, resolve_method_params
from benchmark.methods.vicreg import vicreg_loss

from .reference import TOL, D, N, column_stats, hadamard, rand, rows

pytestmark = pytest.mark.usefixtures("one_thread")


def ref_vicreg(z1, z2, sim_w, var_w, cov_w, eps=1e-4, variance_reduction="sum"):
    """VICReg (Bardes et al. 2022): the invariance is the mean squared error over all N*D entries,
    each branch's hinge on the std is averaged over dimensions and the two branches added (solo-learn's
    solo/losses/vicreg.py; halved with "mean", as the VICReg authors' main_vicreg.py), the covariance
    term uses the (N-1)-normalised covariance, its squared off-diagonal entries summed and divided by D."""
    a, b = rows(z1), rows(z2)
    n, d = len(a), len(a[0])
    invariance = sum((a[i][j] - b[i][j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    variance = covariance = 0.0
    for z in (a, b):
        means, variances = column_stats(z, unbiased=True)
        variance += (
            sum(max(0.0, 1.0 - math.sqrt(v + eps)) for v in variances) / d / (2 if variance_reduction == "mean" else 1)
        )
        for j in range(d):
            for k in range(d):
                if j != k:
                    c = sum((z[i][j] - means[j]) * (z[i][k] - means[k]) for i in range(n)) / (n - 1)
                    covariance += c * c / d
    return sim_w * invariance + var_w * variance + cov_w * covariance


@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
@pytest.mark.parametrize("scale", [0.3, 2.0])  # 0.3: the variance hinge is active; 2.0: it is not
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_vicreg_loss_matches_reference(weights, scale, reduction):
    z1, z2 = scale * rand(N, D, seed=11), scale * rand(N, D, seed=12)
    got = vicreg_loss(z1, z2, *weights, variance_reduction=reduction).item()
    assert got == pytest.approx(ref_vicreg(z1, z2, *weights, variance_reduction=reduction), **TOL)


def test_vicreg_variance_reduction_defaults_to_solo_learns_sum():
    assert METHODS.get("vicreg").Params().variance_reduction == "sum"
    z1, z2 = 0.3 * rand(N, D, seed=11), 0.3 * rand(N, D, seed=12)
    summed, halved = (vicreg_loss(z1, z2, 0.0, 1.0, 0.0, variance_reduction=r).item() for r in ("sum", "mean"))
    assert summed == pytest.approx(2 * halved) and summed > 0
    with pytest.raises(ConfigError, match="unknown method_args.variance_reduction 'half'.*mean, sum"):
        resolve_method_params("vicreg", {"variance_reduction": "half"})


def test_vicreg_terms_vanish_where_the_paper_says():
    z = rand(16, D, seed=13)
    # invariance: 0 for identical views
    assert vicreg_loss(z, z, 1.0, 0.0, 0.0).item() == pytest.approx(0.0, abs=1e-7)
    assert vicreg_loss(z, z + 1.0, 1.0, 0.0, 0.0).item() == pytest.approx(1.0, abs=1e-6)
    # variance: 0 once every column's std is >= 1, positive below
    wide = z / z.std(dim=0) * 1.5
    assert (wide.std(dim=0) >= 1).all()
    assert vicreg_loss(wide, wide * 2, 0.0, 1.0, 0.0).item() == 0.0
    narrow = z / z.std(dim=0) * 0.5
    expected = 2 * (1 - math.sqrt(0.25 + 1e-4))  # same for each column and each branch; the branches add
    assert vicreg_loss(narrow, narrow, 0.0, 1.0, 0.0).item() == pytest.approx(expected, abs=1e-6)
    # covariance: 0 for decorrelated columns
    h = hadamard(8)[:, 1 : D + 1]
    assert vicreg_loss(h, h, 0.0, 0.0, 1.0).item() == pytest.approx(0.0, abs=1e-7)
