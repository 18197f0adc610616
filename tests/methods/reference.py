"""What the per-method tests share: small random batches, the scalar helpers of the slow references of
the published formulas, and a method built at CPU size on a tiny backbone."""

from __future__ import annotations

import math

import torch

from benchmark.backbones import SmallCNN
from benchmark.methods import MethodContext, build_method
from tests.conftest import small_method_args

N, D = 6, 5
TOL = dict(rel=1e-5, abs=1e-5)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def rows(z: torch.Tensor) -> list[list[float]]:
    return z.double().tolist()


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def cosine(a, b):
    return dot(a, b) / (math.sqrt(dot(a, a)) * math.sqrt(dot(b, b)))


def column_stats(z, unbiased):
    n, d = len(z), len(z[0])
    means = [sum(z[i][j] for i in range(n)) / n for j in range(d)]
    variances = [sum((z[i][j] - means[j]) ** 2 for i in range(n)) / (n - 1 if unbiased else n) for j in range(d)]
    return means, variances


def hadamard(n: int) -> torch.Tensor:
    """Sylvester's +-1 Hadamard matrix: orthogonal columns; every column but the first has mean 0."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while len(h) < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def build(name: str, num_train: int = 50, **extra):
    torch.manual_seed(0)
    backbone = SmallCNN()
    overrides = small_method_args(name, 32, proj_output_dim=16, **extra)
    method = build_method(
        name, backbone, backbone.num_features, overrides, MethodContext(num_train=num_train, epochs=1)
    )
    return method


def views(seed: int = 0, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randn(n, 3, 8, 8, generator=g)
