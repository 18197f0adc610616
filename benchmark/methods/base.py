"""What every method shares: its registry, its optimiser recipe, and small helpers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from benchmark.registry import Registry

METHODS: Registry[type] = Registry("method")


@dataclass(frozen=True)
class Recipe:
    """The published optimiser settings; lr is the base lr for a batch of 256 (scaled linearly)."""

    optimizer: str
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class MethodContext:
    """Facts about the run a method may size itself by (e.g. NNCLR's queue <= training images)."""

    num_train: int
    epochs: int


class SSLMethod(nn.Module):
    """A backbone plus heads; forward(view1, view2) -> scalar loss. A method that sets
    `uses_pair_ids` also gets ids=(anchor indices, positive indices) (SimCLR's false-negative mask)."""

    uses_pair_ids = False

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def embed_pair(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features of both views in one pass (one kernel launch per layer instead of two)."""
        h = self.backbone(torch.cat([v1, v2]))
        return h.chunk(2)

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step with progress in [0, 1]; default: nothing."""


def mlp(dims: list[int], last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU blocks between the given widths; the last layer is linear (optionally + BN)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=last and not last_bn))  # BN follows otherwise
        if not last:
            layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=False))
    return nn.Sequential(*layers)


def off_diagonal_squares(m: torch.Tensor) -> torch.Tensor:
    """Sum of the squared off-diagonal entries of a square matrix: all squares minus the diagonal's,
    not a boolean mask (whose data-sized result makes the host wait for the GPU)."""
    return m.pow(2).sum() - torch.diagonal(m).pow(2).sum()
