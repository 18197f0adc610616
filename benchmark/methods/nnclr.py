"""NNCLR (Dwibedi et al. 2021): the positive's stand-in is its nearest neighbour in a support queue."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.distributed import gather
from benchmark.errors import ConfigError
from benchmark.methods.base import METHODS, MethodContext, Recipe, SSLMethod, mlp


def nnclr_loss(nn1: torch.Tensor, p2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of cos(nn1_i, p2_j) / T with target j = i (the other view's prediction)."""
    logits = F.normalize(nn1.float(), dim=1) @ F.normalize(p2.float(), dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(nn1), device=nn1.device))


@dataclass(frozen=True)
class NNCLRParams:
    proj_hidden_dim: int = 2048
    proj_output_dim: int = 256
    pred_hidden_dim: int = 4096
    queue_size: int = 65536  # capped at the number of training images
    temperature: float = 0.2

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"method_args.temperature must be > 0, got {self.temperature}")


@METHODS.register("nnclr")
class NNCLR(SSLMethod):
    Params = NNCLRParams
    recipe = Recipe(optimizer="lars", lr=0.4, weight_decay=1e-5)

    def __init__(self, backbone, feat_dim: int, params: NNCLRParams, context: MethodContext):
        super().__init__(backbone)
        self.params = params
        dims = [feat_dim, params.proj_hidden_dim, params.proj_hidden_dim, params.proj_output_dim]
        self.projector = mlp(dims, last_bn=True)
        self.predictor = mlp([params.proj_output_dim, params.pred_hidden_dim, params.proj_output_dim])
        size = max(1, min(params.queue_size, context.num_train))
        self.register_buffer("queue", torch.zeros(size, params.proj_output_dim))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self._pending: torch.Tensor | None = None

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest queue entry (cosine) of each row; the row itself while the queue is still empty."""
        z = F.normalize(z.float(), dim=1)
        sims = z @ self.queue.T
        valid = torch.arange(len(self.queue), device=z.device) < self.queue_filled
        sims = sims.masked_fill(~valid, float("-inf"))
        found = self.queue[sims.argmax(dim=1)]
        return torch.where(self.queue_filled > 0, found, z)

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
    def after_step(self, progress: float) -> None:
        """Enqueue the last batch's first-view projections (FIFO), without a host sync."""
        if self._pending is None:
            return
        batch, size = self._pending[: len(self.queue)], len(self.queue)
        slots = (self.queue_ptr + torch.arange(len(batch), device=batch.device)) % size
        self.queue.index_copy_(0, slots, batch.to(self.queue.dtype))
        self.queue_ptr.copy_((self.queue_ptr + len(batch)) % size)
        self.queue_filled.copy_(torch.clamp(self.queue_filled + len(batch), max=size))
        self._pending = None
