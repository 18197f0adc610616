"""NNCLR (Dwibedi et al. 2021): the positive's stand-in is its nearest neighbour in a support queue."""

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
    MethodContext,
    MethodParams,
    OptimValues,
    Recipe,
    SSLMethod,
    mlp,
)


def nnclr_loss(nn1: torch.Tensor, p2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of cos(nn1_i, p2_j) / T with target j = i (the other view's prediction)."""
    logits = F.normalize(nn1.float(), dim=1) @ F.normalize(p2.float(), dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(nn1), device=nn1.device))


@dataclass(frozen=True)
class NNCLRParams(MethodParams):
    proj_hidden_dim: int = 2048  # solo-learn scripts/pretrain/cifar/nnclr.yaml: method_kwargs
    proj_output_dim: int = 256  # same file
    pred_hidden_dim: int = 4096  # same file
    queue_size: int = 65536  # same file (not capped: a queue larger than the data holds repeats)
    temperature: float = 0.2  # same file

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"method_args.temperature must be > 0, got {self.temperature}")
        if self.queue_size < 1:
            raise ConfigError(f"method_args.queue_size must be >= 1, got {self.queue_size}")


@METHODS.register("nnclr")
class NNCLR(SSLMethod):
    display_name, table_order = "NNCLR", 2  # the paper's name and column order
    Params = NNCLRParams
    params: NNCLRParams
    queue: torch.Tensor  # buffers
    queue_ptr: torch.Tensor
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/nnclr.yaml (optimizer block; augmentations: asymmetric)
        optimizer="lars",
        lr=0.4,
        weight_decay=1e-5,
        optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/nnclr.yaml",
        classifier_lr=0.1,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.4, 1e-5, 0.1, "solo-learn scripts/pretrain/imagenet-100/nnclr.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/nnclr.py",
        strong=StrongRecipe(small=SOLO_CIFAR_ASYMMETRIC, large=SOLO_IMAGENET_ASYMMETRIC),
    )

    def __init__(self, backbone, feat_dim: int, params: NNCLRParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        # solo-learn solo/methods/nnclr.py: projector (Linear-BN-ReLU) x 2, Linear-BN (affine);
        # predictor Linear-BN-ReLU-Linear
        dims = [feat_dim, params.proj_hidden_dim, params.proj_hidden_dim, params.proj_output_dim]
        self.projector = mlp(dims, last_bn=True)
        self.predictor = mlp([params.proj_output_dim, params.pred_hidden_dim, params.proj_output_dim])
        # solo-learn: the queue starts as random unit vectors, so the first steps' "neighbours" are noise
        # that real projections soon displace (each is nearer its kind than a random direction)
        queue = F.normalize(torch.randn(params.queue_size, params.proj_output_dim), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending: torch.Tensor | None = None

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """The most cosine-similar queue entry of each row."""
        sims = F.normalize(z.float(), dim=1) @ self.queue.T
        return self.queue[sims.argmax(dim=1)]

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        z1, z2 = self.projector(h1), self.projector(h2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        nn1, nn2 = self.nearest(z1), self.nearest(z2)
        self._pending = F.normalize(gather(z1.detach()).float(), dim=1)  # every rank keeps the same queue
        t = self.params.temperature
        nn1, nn2, p1, p2 = gather(nn1), gather(nn2), gather(p1), gather(p2)  # the global batch's negatives
        return (nnclr_loss(nn1, p2, t) + nnclr_loss(nn2, p1, t)) / 2

    @torch.no_grad()
    def after_step(self, progress: float, started: float | None = None) -> None:
        """Enqueue the last batch's first-view projections (FIFO), without a host sync."""
        if self._pending is None:
            return
        batch, size = self._pending[: len(self.queue)], len(self.queue)
        slots = (self.queue_ptr + torch.arange(len(batch), device=batch.device)) % size
        self.queue.index_copy_(0, slots, batch.to(self.queue.dtype))
        self.queue_ptr.copy_((self.queue_ptr + len(batch)) % size)
        self._pending = None
