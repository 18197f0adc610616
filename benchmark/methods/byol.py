"""BYOL (Grill et al. 2020): predict an EMA target network's projection of the other view."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.errors import ConfigError
from benchmark.augment import SOLO_CIFAR_ASYMMETRIC, SOLO_IMAGENET_ASYMMETRIC, StrongRecipe
from benchmark.methods.base import METHODS, SOLO_CIFAR_LARS, MethodContext, MethodParams, Recipe, SSLMethod, mlp


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 2 - 2 cos(p_i, z_i): the normalised MSE of the BYOL paper."""
    return (2 - 2 * F.cosine_similarity(p.float(), z.float(), dim=1)).mean()


def ema_momentum(base: float, final: float, progress: float) -> float:
    """tau = final - (final - base) * (cos(pi * progress) + 1) / 2: base at the start, final at the end."""
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


@dataclass(frozen=True)
class BYOLParams(MethodParams):
    proj_hidden_dim: int = 4096  # solo-learn scripts/pretrain/cifar/byol.yaml: method_kwargs
    proj_output_dim: int = 256  # same file
    pred_hidden_dim: int = 4096  # same file
    tau_base: float = 0.99  # same file: momentum.base_tau
    tau_final: float = 1.0  # same file: momentum.final_tau

    def validate(self) -> None:
        if not 0.0 <= self.tau_base <= self.tau_final <= 1.0:
            raise ConfigError(f"method_args need 0 <= tau_base <= tau_final <= 1, got {self.tau_base}, {self.tau_final}")


@METHODS.register("byol")
class BYOL(SSLMethod):
    Params = BYOLParams
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/byol.yaml (optimizer block; augmentations: asymmetric)
        optimizer="lars", lr=1.0, weight_decay=1e-5, optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/byol.yaml",
        heads_source="solo-learn solo/methods/byol.py",
        strong=StrongRecipe(small=SOLO_CIFAR_ASYMMETRIC, large=SOLO_IMAGENET_ASYMMETRIC),
    )

    def __init__(self, backbone, feat_dim: int, params: BYOLParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        # solo-learn solo/methods/byol.py: Linear-BN-ReLU-Linear for both
        self.projector = mlp([feat_dim, params.proj_hidden_dim, params.proj_output_dim])
        self.predictor = mlp([params.proj_output_dim, params.pred_hidden_dim, params.proj_output_dim])
        self.target = nn.Sequential(copy.deepcopy(backbone), copy.deepcopy(self.projector))
        self.target.requires_grad_(False)
        self._ema = None

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        p1, p2 = self.predictor(self.projector(h1)), self.predictor(self.projector(h2))
        with torch.no_grad():
            t1, t2 = self.embed_pair(v1, v2, self.target)
        return byol_loss(p1, t2) + byol_loss(p2, t1)

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """target <- tau * target + (1 - tau) * online, tau from progress alone (so resuming is exact);
        BatchNorm statistics are copied. Two foreach kernels, not one launch per tensor."""
        tau = ema_momentum(self.params.tau_base, self.params.tau_final, progress)
        target_params, online_params, target_buffers, online_buffers = self._ema_tensors()
        torch._foreach_lerp_(target_params, online_params, 1.0 - tau)
        if target_buffers:
            torch._foreach_copy_(target_buffers, online_buffers)

    def _ema_tensors(self):
        """Listed once, at the first step: by then .to(device) has replaced every buffer object."""
        if getattr(self, "_ema", None) is None:
            online = nn.ModuleList([self.backbone, self.projector])
            self._ema = (list(self.target.parameters()), list(online.parameters()),
                         list(self.target.buffers()), list(online.buffers()))
        return self._ema
