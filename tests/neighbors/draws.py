"""What the neighbour tests share: the CPU, seeded generators and drawn frequencies."""

from __future__ import annotations

import torch

CPU = torch.device("cpu")
DRAWS = 20_000
TOL = 0.02


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def frequencies(values: torch.Tensor, candidates) -> dict[int, float]:
    return {int(c): float((values == int(c)).float().mean()) for c in candidates}
