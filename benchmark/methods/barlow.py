"""Barlow Twins (Zbontar et al. 2021): drive the cross-correlation of the two views to the identity."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.augment import SOLO_CIFAR_ASYMMETRIC, SOLO_IMAGENET_ASYMMETRIC, StrongRecipe
from benchmark.distributed import gather
from benchmark.methods.base import (
    METHODS,
    SOLO_CIFAR_LARS,
    MethodContext,
    MethodParams,
    OptimValues,
    Recipe,
    SSLMethod,
    mlp,
    off_diagonal_squares,
)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float, eps: float = 1e-5) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2, where C = z1n^T z2n / N and zn is z
    standardised per dimension over the batch (biased variance, as BatchNorm without affine)."""
    z1, z2 = z1.float(), z2.float()
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = z1.T @ z2 / n
    on_diag = (1 - torch.diagonal(c)).pow(2).sum()
    return on_diag + lambd * off_diagonal_squares(c)


@dataclass(frozen=True)
class BarlowParams(MethodParams):
    proj_hidden_dim: int = 2048  # solo-learn scripts/pretrain/cifar/barlow.yaml: method_kwargs
    proj_output_dim: int = 2048  # same file
    lambd: float = 0.0051  # solo-learn solo/methods/barlow_twins.py: method_kwargs.lamb default
    scale_loss: float = 0.1  # solo-learn scripts/pretrain/cifar/barlow.yaml: method_kwargs


@METHODS.register("barlow")
class BarlowTwins(SSLMethod):
    display_name, table_order = "Barlow Twins", 4  # the paper's name and column order
    solo_name, solo_names = "barlow_twins", {"lamb": "lambd"}  # solo-learn solo/methods/barlow_twins.py
    Params = BarlowParams
    params: BarlowParams
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/barlow.yaml (optimizer block; augmentations: asymmetric)
        optimizer="lars",
        lr=0.3,
        weight_decay=1e-4,
        optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/barlow.yaml",
        classifier_lr=0.1,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.3, 1e-4, 0.1, "solo-learn scripts/pretrain/imagenet-100/barlow.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/barlow_twins.py",
        strong=StrongRecipe(small=SOLO_CIFAR_ASYMMETRIC, large=SOLO_IMAGENET_ASYMMETRIC),
    )

    def __init__(self, backbone, feat_dim: int, params: BarlowParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        # solo-learn solo/methods/barlow_twins.py: (Linear-BN-ReLU) x 2, Linear
        self.projector = mlp([feat_dim, params.proj_hidden_dim, params.proj_hidden_dim, params.proj_output_dim])

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        z1, z2 = gather(self.projector(h1)), gather(self.projector(h2))  # statistics of the global batch
        return self.params.scale_loss * barlow_twins_loss(z1, z2, self.params.lambd)
