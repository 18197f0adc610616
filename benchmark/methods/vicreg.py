"""VICReg (Bardes et al. 2022): invariance + variance + covariance terms, no negatives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.augment import ReferencePipeline, StrongRecipe
from benchmark.distributed import gather
from benchmark.errors import choice_error
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

# How the two views' variance hinges combine. The references disagree: solo-learn adds them
# (solo/losses/vicreg.py, variance_loss), the VICReg authors' code averages them
# (facebookresearch/vicreg main_vicreg.py: std_loss = mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2).
VARIANCE_REDUCTIONS = {"sum": 1.0, "mean": 0.5}


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_weight: float,
    var_weight: float,
    cov_weight: float,
    eps: float = 1e-4,
    variance_reduction: str = "sum",
) -> torch.Tensor:
    """sim * MSE(z1, z2)
    + var * [mean_j relu(1 - sqrt(Var z1_j + eps)) + same for z2] (x 1/2 with variance_reduction "mean")
    + cov * [sum_{i != j} C(z1)_ij^2 / d + same for z2], with C the (N - 1)-normalised covariance."""
    z1, z2 = z1.float(), z2.float()
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    z1, z2 = z1 - z1.mean(dim=0), z2 - z2.mean(dim=0)
    std1, std2 = torch.sqrt(z1.var(dim=0) + eps), torch.sqrt(z2.var(dim=0) + eps)
    variance = VARIANCE_REDUCTIONS[variance_reduction] * (F.relu(1 - std1).mean() + F.relu(1 - std2).mean())
    cov1, cov2 = z1.T @ z1 / (n - 1), z2.T @ z2 / (n - 1)
    covariance = off_diagonal_squares(cov1) / d + off_diagonal_squares(cov2) / d
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance


@dataclass(frozen=True)
class VICRegParams(MethodParams):
    proj_hidden_dim: int = 2048  # solo-learn scripts/pretrain/cifar/vicreg.yaml: method_kwargs
    proj_output_dim: int = 2048  # same file
    sim_weight: float = 25.0  # same file: sim_loss_weight
    var_weight: float = 25.0  # same file: var_loss_weight
    cov_weight: float = 1.0  # same file: cov_loss_weight
    variance_reduction: str = "sum"  # solo-learn's; "mean" is the VICReg authors' (see VARIANCE_REDUCTIONS)

    def validate(self) -> None:
        if self.variance_reduction not in VARIANCE_REDUCTIONS:
            raise choice_error("method_args.variance_reduction", self.variance_reduction, VARIANCE_REDUCTIONS)


# solo-learn scripts/pretrain/cifar/vicreg.yaml, its inline `augmentations:` block (num_crops: 2)
_VICREG_VIEW = {
    "crop": True,
    "crop_scale": (0.2, 1.0),  # rrc: crop_min_scale 0.2
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.2,
    "hue": 0.1,  # color_jitter
    "grayscale_p": 0.2,
    "blur_p": 0.0,
    "solarize_p": 0.1,
    "flip_p": 0.5,
}


@METHODS.register("vicreg")
class VICReg(SSLMethod):
    display_name, table_order = "VICReg", 3  # the paper's name and column order
    Params = VICRegParams
    solo_names = {  # solo-learn solo/methods/vicreg.py: method_kwargs
        "sim_loss_weight": "sim_weight",
        "var_loss_weight": "var_weight",
        "cov_loss_weight": "cov_weight",
    }
    params: VICRegParams
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/vicreg.yaml (optimizer block)
        optimizer="lars",
        lr=0.3,
        weight_decay=1e-4,
        optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/vicreg.yaml",
        classifier_lr=0.1,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.3, 1e-4, 0.1, "solo-learn scripts/pretrain/imagenet-100/vicreg.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/vicreg.py",
        strong=StrongRecipe(
            small=ReferencePipeline(_VICREG_VIEW, _VICREG_VIEW, "solo-learn scripts/pretrain/cifar/vicreg.yaml"),
            large=ReferencePipeline(  # imagenet-100/augmentations/vicreg.yaml: gaussian_blur prob 0.5
                {**_VICREG_VIEW, "blur_p": 0.5},
                {**_VICREG_VIEW, "blur_p": 0.5},
                "solo-learn scripts/pretrain/imagenet-100/augmentations/vicreg.yaml",
            ),
        ),
    )

    def __init__(self, backbone, feat_dim: int, params: VICRegParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        # solo-learn solo/methods/vicreg.py: (Linear-BN-ReLU) x 2, Linear
        self.projector = mlp([feat_dim, params.proj_hidden_dim, params.proj_hidden_dim, params.proj_output_dim])

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        p = self.params
        z1, z2 = gather(self.projector(h1)), gather(self.projector(h2))  # statistics of the global batch
        return vicreg_loss(z1, z2, p.sim_weight, p.var_weight, p.cov_weight, variance_reduction=p.variance_reduction)
