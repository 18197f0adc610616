"""SimSiam (Chen & He 2021): predict the other view's projection, stopped gradient, no momentum encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.augment import SOLO_IMAGENET_ASYMMETRIC, ReferencePipeline, StrongRecipe
from benchmark.distributed import gather
from benchmark.methods.base import METHODS, MethodContext, MethodParams, OptimValues, Recipe, SSLMethod, mlp


def simsiam_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -cos(p_i, stopgrad(z_i)): the negative cosine D of the SimSiam paper."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()


@dataclass(frozen=True)
class SimSiamParams(MethodParams):
    proj_hidden_dim: int = 2048  # solo-learn scripts/pretrain/cifar/simsiam.yaml: method_kwargs
    proj_output_dim: int = 2048  # same file
    pred_hidden_dim: int = 512  # same file (its `temperature: 0.2` is unused by SimSiam's loss)


# solo-learn scripts/pretrain/cifar/augmentations/symmetric_weak.yaml, simsiam.yaml's augmentation file;
# both views alike (num_crops: 2)
_SYMMETRIC_WEAK_VIEW = {
    "crop": True,
    "crop_scale": (0.08, 1.0),  # rrc: crop_min_scale 0.08, crop_max_scale 1.0
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.4,
    "hue": 0.1,  # color_jitter
    "grayscale_p": 0.2,
    "blur_p": 0.5,
    "solarize_p": 0.0,
    "flip_p": 0.5,
}


@METHODS.register("simsiam")
class SimSiam(SSLMethod):
    display_name, table_order = "SimSiam", 5
    Params = SimSiamParams
    params: SimSiamParams
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/simsiam.yaml (optimizer block: name sgd, no kwargs)
        optimizer="sgd",
        lr=0.5,
        weight_decay=1e-5,  # momentum 0.9: solo/args/pretrain.py's sgd default
        source="solo-learn scripts/pretrain/cifar/simsiam.yaml",
        classifier_lr=0.1,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.5, 1e-5, 0.1, "solo-learn scripts/pretrain/imagenet-100/simsiam.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/simsiam.py",
        strong=StrongRecipe(
            small=ReferencePipeline(
                _SYMMETRIC_WEAK_VIEW,
                _SYMMETRIC_WEAK_VIEW,
                "solo-learn scripts/pretrain/cifar/augmentations/symmetric_weak.yaml",
            ),
            large=SOLO_IMAGENET_ASYMMETRIC,  # imagenet-100/simsiam.yaml: augmentations: asymmetric.yaml
        ),
    )

    def __init__(self, backbone, feat_dim: int, params: SimSiamParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        hidden, out = params.proj_hidden_dim, params.proj_output_dim
        # solo-learn solo/methods/simsiam.py: (Linear-BN-ReLU) x 2, Linear-BN without affine, no Linear with a
        # bias (its last Linear keeps one frozen at its initial value, which the BatchNorm after it cancels)
        self.projector = mlp([feat_dim, hidden, hidden, out], last_bn=True, last_bn_affine=False, bias="none")
        # predictor: Linear (no bias)-BN-ReLU-Linear (with bias)
        self.predictor = mlp([out, params.pred_hidden_dim, out], bias="unless-bn")

    def static_lr_modules(self) -> list:
        return [self.predictor]  # solo-learn solo/methods/simsiam.py learnable_params: predictor static_lr True

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        z1, z2 = self.projector(h1), self.projector(h2)
        p1, p2 = gather(self.predictor(z1)), gather(self.predictor(z2))
        z1, z2 = gather(z1), gather(z2)  # the mean over the global batch, as the other methods' losses
        return simsiam_loss(p1, z2) / 2 + simsiam_loss(p2, z1) / 2
