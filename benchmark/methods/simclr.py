"""SimCLR (Chen et al. 2020): NT-Xent over the 2N views of a batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.augment import ReferencePipeline, StrongRecipe
from benchmark.distributed import gather, gather_ids
from benchmark.errors import ConfigError
from benchmark.methods.base import (
    METHODS,
    SOLO_CIFAR_LARS,
    MethodContext,
    MethodParams,
    OptimValues,
    Recipe,
    SSLMethod,
    mlp,
)


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, ids: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Mean over the 2N views of -log( exp(s_ip / T) / sum_{k != i} exp(s_ik / T) ), s = cosine,
    where p is the other view of the same pair; every other view in the batch is a negative.

    With `ids` (the image index of each row of z1 and z2), views of the same image as view i, other
    than its positive, are dropped from its negatives: under GPS a positive x' may also be an
    anchor of the batch, and would otherwise be pushed away from itself."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    if ids is not None:
        image = torch.cat(ids)
        same = image[:, None] == image[None, :]
        positive = torch.zeros_like(same)
        rows = torch.arange(n, device=z.device)
        positive[rows, rows + n] = True
        positive[rows + n, rows] = True
        logits = logits.masked_fill(same & ~positive, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def multi_positive_nt_xent(
    views: list[torch.Tensor], temperature: float, ids: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """SupCon-style NT-Xent (Khosla et al. 2020, L_out) over V = (m + 1) N views: `views` holds the
    anchors' view z_0 and the m positive views z_1..z_m (N rows each); the views of one anchor, row i
    of every z_j, form a group. With s = cosine and A(i) every view but i,

        L = 1/|V| sum_{i in V} -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / T) / sum_{a in A(i)} exp(s_ia / T) )

    where P(i), the other m views of i's group, are its positives. m = 1 is nt_xent_loss. With `ids`
    (each view's image index), views of i's image outside its group leave A(i), as in nt_xent_loss."""
    z = F.normalize(torch.cat(views).float(), dim=1)
    n, total = views[0].shape[0], z.shape[0]
    logits = z @ z.T / temperature
    group = torch.arange(total, device=z.device) % n
    positive = group[:, None] == group[None, :]
    positive.fill_diagonal_(False)
    logits.fill_diagonal_(float("-inf"))
    if ids is not None:
        image = torch.cat(ids)
        logits = logits.masked_fill((image[:, None] == image[None, :]) & ~positive, float("-inf"))
    log_prob = logits.log_softmax(dim=1)
    per_view = -log_prob.masked_fill(~positive, 0.0).sum(dim=1) / positive.sum(dim=1)
    return per_view.mean()


@dataclass(frozen=True)
class SimCLRParams(MethodParams):
    proj_hidden_dim: int = 2048  # solo-learn scripts/pretrain/cifar/simclr.yaml: method_kwargs
    proj_output_dim: int = 256  # same file
    temperature: float = 0.2  # same file
    mask_false_negatives: bool = False  # GPS: a positive that is also an anchor is not a negative

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"method_args.temperature must be > 0, got {self.temperature}")


# solo-learn's `symmetric.yaml`, SimCLR's augmentation file; both views alike (num_crops: 2)
_SYMMETRIC_VIEW = {
    "crop": True,
    "crop_scale": (0.08, 1.0),  # rrc: crop_min_scale 0.08, crop_max_scale 1.0
    "jitter_p": 0.8,
    "brightness": 0.8,
    "contrast": 0.8,
    "saturation": 0.8,
    "hue": 0.2,  # color_jitter
    "grayscale_p": 0.2,
    "blur_p": 0.5,
    "solarize_p": 0.0,
    "flip_p": 0.5,
}


@METHODS.register("simclr")
class SimCLR(SSLMethod):
    display_name, table_order = "SimCLR", 0  # the paper's name and column order
    Params = SimCLRParams
    params: SimCLRParams
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/simclr.yaml (optimizer block)
        optimizer="lars",
        lr=0.4,
        weight_decay=1e-4,
        optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/simclr.yaml",
        classifier_lr=0.1,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.3, 1e-4, 0.1, "solo-learn scripts/pretrain/imagenet-100/simclr.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/simclr.py",
        strong=StrongRecipe(
            small=ReferencePipeline(
                _SYMMETRIC_VIEW, _SYMMETRIC_VIEW, "solo-learn scripts/pretrain/cifar/augmentations/symmetric.yaml"
            ),
            large=ReferencePipeline(
                _SYMMETRIC_VIEW,
                _SYMMETRIC_VIEW,  # the same values at 224 px
                "solo-learn scripts/pretrain/imagenet-100/augmentations/symmetric.yaml",
            ),
        ),
    )

    def __init__(self, backbone, feat_dim: int, params: SimCLRParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        # solo-learn solo/methods/simclr.py: Linear-ReLU-Linear, no BatchNorm
        self.projector = mlp([feat_dim, params.proj_hidden_dim, params.proj_output_dim], hidden_bn=False)
        self.uses_pair_ids = params.mask_false_negatives

    def forward(self, v1: torch.Tensor, v2: torch.Tensor, ids=None) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        if ids is not None:
            ids = (gather_ids(ids[0]), gather_ids(ids[1]))
        return nt_xent_loss(gather(self.projector(h1)), gather(self.projector(h2)), self.params.temperature, ids)

    def multi_positive_loss(self, v1: torch.Tensor, positives: list[torch.Tensor], ids=None) -> torch.Tensor:
        """Multi-positive NT-Xent (multi_positive_nt_xent) over the anchor view and its m positive views,
        each view embedded once (one pass per view, or one joint pass with bn_per_view false)."""
        hs = self.embed_views([v1, *positives])
        zs = [gather(self.projector(h)) for h in hs]
        image_ids = None
        if ids is not None and self.uses_pair_ids:
            image_ids = [gather_ids(ids[0][0]), *(gather_ids(positive) for _, positive in ids)]
        return multi_positive_nt_xent(zs, self.params.temperature, image_ids)
