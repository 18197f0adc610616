"""MoCo v3 (Chen, Xie & He 2021): the predicted query of one view picks out its momentum key of the other
view among the batch's keys (InfoNCE), symmetrised."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.augment import SOLO_CIFAR_ASYMMETRIC, SOLO_IMAGENET_ASYMMETRIC, StrongRecipe
from benchmark.distributed import gather
from benchmark.errors import ConfigError
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


def mocov3_loss(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """2T x cross-entropy of cos(q_i, k_j) / T with target j = i, keys without gradient
    (solo-learn solo/losses/mocov3.py: the 2T factor is the MoCo v3 paper's)."""
    logits = F.normalize(q.float(), dim=1) @ F.normalize(k.detach().float(), dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device)) * (2 * temperature)


@dataclass(frozen=True)
class MoCoV3Params(MethodParams):
    proj_hidden_dim: int = 4096  # solo-learn scripts/pretrain/cifar/mocov3.yaml: method_kwargs
    proj_output_dim: int = 256  # same file
    pred_hidden_dim: int = 4096  # same file
    temperature: float = 0.2  # same file
    tau_base: float = 0.99  # same file: momentum.base_tau
    tau_final: float = 1.0  # same file: momentum.final_tau

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"method_args.temperature must be > 0, got {self.temperature}")
        check_taus(self.tau_base, self.tau_final)


@METHODS.register("mocov3")
class MoCoV3(SSLMethod):
    display_name, table_order = "MoCo v3", 6
    Params = MoCoV3Params
    solo_names = SOLO_MOMENTUM_NAMES
    params: MoCoV3Params
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/mocov3.yaml (optimizer block; augmentations: asymmetric)
        optimizer="lars",
        lr=0.3,
        weight_decay=1e-6,
        optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/mocov3.yaml",
        classifier_lr=0.3,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.3, 1e-6, 0.3, "solo-learn scripts/pretrain/imagenet-100/mocov3.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/mocov3.py",
        strong=StrongRecipe(small=SOLO_CIFAR_ASYMMETRIC, large=SOLO_IMAGENET_ASYMMETRIC),
    )

    def __init__(self, backbone, feat_dim: int, params: MoCoV3Params, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        # solo-learn solo/methods/mocov3.py, ResNet branch: two-layer projector ending in BN without affine,
        # two-layer predictor without a last BN; no Linear has a bias (MoCoV3._build_mlp)
        out = params.proj_output_dim
        self.projector = mlp([feat_dim, params.proj_hidden_dim, out], last_bn=True, last_bn_affine=False, bias="none")
        self.predictor = mlp([out, params.pred_hidden_dim, out], bias="none")
        self.target = MomentumTarget([backbone, self.projector], params.tau_base, params.tau_final)

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        q1, q2 = gather(self.predictor(self.projector(h1))), gather(self.predictor(self.projector(h2)))
        with torch.no_grad():
            k1, k2 = (gather(k) for k in self.embed_pair(v1, v2, self.target))
        t = self.params.temperature
        return mocov3_loss(q1, k2, t) + mocov3_loss(q2, k1, t)

    def after_step(self, progress: float, started: float | None = None) -> None:
        """target <- tau * target + (1 - tau) * online, tau at the step's start (benchmark/methods/momentum.py)."""
        self.target.update(progress if started is None else started)
