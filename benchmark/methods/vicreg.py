"""VICReg (Bardes et al. 2022): invariance + variance + covariance terms, no negatives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.distributed import gather
from benchmark.methods.base import METHODS, MethodContext, Recipe, SSLMethod, mlp, off_diagonal_squares


def vicreg_loss(
    z1: torch.Tensor, z2: torch.Tensor, sim_weight: float, var_weight: float, cov_weight: float, eps: float = 1e-4
) -> torch.Tensor:
    """As the official code: sim * MSE(z1, z2)
    + var * [mean_j relu(1 - sqrt(Var z1_j + eps)) + same for z2] / 2
    + cov * [sum_{i != j} C(z1)_ij^2 / d + same for z2], with C the (N - 1)-normalised covariance."""
    z1, z2 = z1.float(), z2.float()
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    z1, z2 = z1 - z1.mean(dim=0), z2 - z2.mean(dim=0)
    std1, std2 = torch.sqrt(z1.var(dim=0) + eps), torch.sqrt(z2.var(dim=0) + eps)
    variance = F.relu(1 - std1).mean() / 2 + F.relu(1 - std2).mean() / 2
    cov1, cov2 = z1.T @ z1 / (n - 1), z2.T @ z2 / (n - 1)
    covariance = off_diagonal_squares(cov1) / d + off_diagonal_squares(cov2) / d
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance


@dataclass(frozen=True)
class VICRegParams:
    proj_hidden_dim: int = 2048
    proj_output_dim: int = 2048
    sim_weight: float = 25.0
    var_weight: float = 25.0
    cov_weight: float = 1.0


@METHODS.register("vicreg")
class VICReg(SSLMethod):
    Params = VICRegParams
    recipe = Recipe(optimizer="lars", lr=0.3, weight_decay=1e-4)

    def __init__(self, backbone, feat_dim: int, params: VICRegParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        self.projector = mlp([feat_dim, params.proj_hidden_dim, params.proj_hidden_dim, params.proj_output_dim])

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        p = self.params
        z1, z2 = gather(self.projector(h1)), gather(self.projector(h2))  # statistics of the global batch
        return vicreg_loss(z1, z2, p.sim_weight, p.var_weight, p.cov_weight)
