"""Priors with no network to load: raw pixels, and the label oracle (the upper bound)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.errors import ConfigError
from benchmark.neighbors import SameClassSampler
from benchmark.priors.base import PRIORS, Prior


@dataclass(frozen=True)
class PixelParams:
    pca_dim: int | None = None  # project onto the top principal components (None: keep every pixel)
    whiten: bool = False  # with pca_dim: scale each component to unit variance

    def validate(self) -> None:
        if self.whiten and not self.pca_dim:
            raise ConfigError("prior_args.whiten needs prior_args.pca_dim")
        if self.pca_dim == 0:
            raise ConfigError("prior_args.pca_dim must be positive or null")


@PRIORS.register("pixel")
class PixelPrior(Prior):
    """g(x) = x flattened and centred (pixels in [0, 1]), optionally PCA(-whitened) to pca_dim."""

    Params = PixelParams

    @torch.no_grad()
    def embed(self, data, device: torch.device) -> torch.Tensor:
        x = torch.as_tensor(data.pretrain.images).to(device).flatten(1).float() / 255
        x = x - x.mean(dim=0)
        if self.params.pca_dim:
            k = min(self.params.pca_dim, *x.shape)
            _, s, v = torch.linalg.svd(x if len(x) <= 20_000 else x[:: len(x) // 20_000 + 1], full_matrices=False)
            x = x @ v[:k].T
            if self.params.whiten:
                x = x / (x.std(dim=0) + 1e-6)
        return x.float().cpu()


@dataclass(frozen=True)
class NoParams:
    pass


@PRIORS.register("oracle")
class OraclePrior(Prior):
    """Positives drawn from the anchor's own class. Uses labels: the upper bound, never a method."""

    Params = NoParams
    needs_k = False
    uses_labels = True

    def positives(self, data, device: torch.device):
        """x' uniform among the other images of x's class: every positive shares the label (agreement 1)."""
        return SameClassSampler(torch.as_tensor(data.pretrain.labels, device=device)), 1.0


@PRIORS.register("none")
class NoPrior(Prior):
    """Plain SSL: the positive is the anchor itself."""

    Params = NoParams
    plain = True
