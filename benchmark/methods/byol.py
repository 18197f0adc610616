"""BYOL (Grill et al. 2020): predict an EMA target network's projection of the other view."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.augment import SOLO_CIFAR_ASYMMETRIC, SOLO_IMAGENET_ASYMMETRIC, StrongRecipe
from benchmark.methods.base import (
    METHODS,
    SOLO_CIFAR_LARS,
    SOLO_MOMENTUM_NAMES,
    MethodContext,
    MethodParams,
    OptimValues,
    Recipe,
    SSLMethod,
    mlp,
)
from benchmark.methods.momentum import MomentumTarget, check_taus


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 2 - 2 cos(p_i, z_i): the normalised MSE of the BYOL paper."""
    return (2 - 2 * F.cosine_similarity(p.float(), z.float(), dim=1)).mean()


@dataclass(frozen=True)
class BYOLParams(MethodParams):
    proj_hidden_dim: int = 4096  # solo-learn scripts/pretrain/cifar/byol.yaml: method_kwargs
    proj_output_dim: int = 256  # same file
    pred_hidden_dim: int = 4096  # same file
    tau_base: float = 0.99  # same file: momentum.base_tau
    tau_final: float = 1.0  # same file: momentum.final_tau

    def validate(self) -> None:
        check_taus(self.tau_base, self.tau_final)


@METHODS.register("byol")
class BYOL(SSLMethod):
    display_name, table_order = "BYOL", 1  # the paper's name and column order
    Params = BYOLParams
    solo_names = SOLO_MOMENTUM_NAMES
    params: BYOLParams
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/byol.yaml (optimizer block; augmentations: asymmetric)
        optimizer="lars",
        lr=1.0,
        weight_decay=1e-5,
        optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/byol.yaml",
        classifier_lr=0.1,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.5, 1e-6, 0.1, "solo-learn scripts/pretrain/imagenet-100/byol.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/byol.py",
        strong=StrongRecipe(small=SOLO_CIFAR_ASYMMETRIC, large=SOLO_IMAGENET_ASYMMETRIC),
    )

    def __init__(self, backbone, feat_dim: int, params: BYOLParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        # solo-learn solo/methods/byol.py: Linear-BN-ReLU-Linear for both
        self.projector = mlp([feat_dim, params.proj_hidden_dim, params.proj_output_dim])
        self.predictor = mlp([params.proj_output_dim, params.pred_hidden_dim, params.proj_output_dim])
        self.target = MomentumTarget([backbone, self.projector], params.tau_base, params.tau_final)

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        p1, p2 = self.predictor(self.projector(h1)), self.predictor(self.projector(h2))
        with torch.no_grad():
            t1, t2 = self.embed_pair(v1, v2, self.target)
        return byol_loss(p1, t2) + byol_loss(p2, t1)

    def after_step(self, progress: float, started: float | None = None) -> None:
        """target <- tau * target + (1 - tau) * online, tau at the step's start (benchmark/methods/momentum.py)."""
        self.target.update(progress if started is None else started)
