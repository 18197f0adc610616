"""MoCo v3's loss against its Algorithm 1, its keys' stop-gradient and heads."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.methods.mocov3 import mocov3_loss
from benchmark.methods.momentum import MomentumTarget

from .reference import TOL, D, N, build, cosine, rand, rows

pytestmark = pytest.mark.usefixtures("one_thread")


def ref_mocov3(q, k, temperature):
    """MoCo v3 (Algorithm 1): 2T x mean_i -log exp(q_i.k_i/T) / sum_j exp(q_i.k_j/T), cosine similarities."""
    a, b = rows(q), rows(k)
    total = 0.0
    for i in range(len(a)):
        denominator = sum(math.exp(cosine(a[i], b[j]) / temperature) for j in range(len(b)))
        total += -math.log(math.exp(cosine(a[i], b[i]) / temperature) / denominator)
    return 2 * temperature * total / len(a)


@pytest.mark.parametrize("temperature", [0.2, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_mocov3_loss_matches_reference(temperature, seed):
    q, k = rand(N, D, seed=seed), rand(N, D, seed=seed + 40)
    assert mocov3_loss(q, k, temperature).item() == pytest.approx(ref_mocov3(q, k, temperature), **TOL)


def test_mocov3_keys_get_no_gradient_and_the_heads_follow_solo_learn():
    q, k = rand(N, D, seed=5).requires_grad_(), rand(N, D, seed=6).requires_grad_()
    mocov3_loss(q, k, 0.2).backward()
    assert k.grad is None and q.grad.abs().sum() > 0
    method = build("mocov3")
    assert [type(m).__name__ for m in method.projector] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert not method.projector[-1].affine and [type(m).__name__ for m in method.predictor] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]
    assert all(m.bias is None for m in method.modules() if isinstance(m, torch.nn.Linear))
    assert isinstance(method.target, MomentumTarget) and method.params.tau_base == 0.99
