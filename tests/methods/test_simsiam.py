"""SimSiam's loss against its formula (eq. 1-2), its stop-gradient and heads."""

from __future__ import annotations

import pytest

from benchmark.methods.momentum import MomentumTarget
from benchmark.methods.simsiam import simsiam_loss

from .reference import TOL, D, N, build, cosine, rand, rows

pytestmark = pytest.mark.usefixtures("one_thread")


def ref_simsiam(p1, z2, p2, z1):
    """SimSiam eq. (1)-(2): L = D(p1, z2) / 2 + D(p2, z1) / 2, D(p, z) = -(p/|p|).(z/|z|) averaged over the batch."""
    d = lambda p, z: -sum(cosine(a, b) for a, b in zip(rows(p), rows(z))) / len(p)  # noqa: E731
    return d(p1, z2) / 2 + d(p2, z1) / 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simsiam_loss_matches_reference(seed):
    p1, z2, p2, z1 = (rand(N, D, seed=seed + 10 * i) for i in range(4))
    got = simsiam_loss(p1, z2) / 2 + simsiam_loss(p2, z1) / 2
    assert got.item() == pytest.approx(ref_simsiam(p1, z2, p2, z1), **TOL)


def test_simsiam_stops_the_gradient_of_the_target_and_has_the_reference_heads():
    p, z = rand(N, D, seed=3).requires_grad_(), rand(N, D, seed=4).requires_grad_()
    simsiam_loss(p, z).backward()
    assert z.grad is None and p.grad.abs().sum() > 0
    assert simsiam_loss(z, z).item() == pytest.approx(-1.0) and simsiam_loss(-z, z).item() == pytest.approx(1.0)
    method = build("simsiam")
    kinds = [(type(m).__name__, getattr(m, "bias", 0) is not None) for m in method.projector]
    assert kinds == [
        ("Linear", False),
        ("BatchNorm1d", True),
        ("ReLU", True),
        ("Linear", False),
        ("BatchNorm1d", True),
        ("ReLU", True),
        ("Linear", False),
        ("BatchNorm1d", False),
    ]  # last BN without affine
    assert [type(m).__name__ for m in method.predictor] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert method.predictor[0].bias is None and method.predictor[-1].bias is not None
    assert not any(isinstance(m, MomentumTarget) for m in method.modules())  # no momentum encoder
