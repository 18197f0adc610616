"""Priors learnt without labels on the dataset itself: a convolutional autoencoder and a VAE.

Trained once per (dataset, settings) with a fixed seed and cached like any embedding, so every run
of a sweep shares them. Images are resized to `size` (default 32) so one small network fits all sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.augment import to_unit_float
from benchmark.errors import ConfigError
from benchmark.priors.base import PRIORS, Prior
from benchmark.progress import progress


@dataclass(frozen=True)
class AutoencoderParams:
    latent_dim: int = 128
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 256
    size: int = 32  # side the images are resized to (a multiple of 4)
    seed: int = 0
    beta: float = 1.0  # vae only: weight of the KL term

    def validate(self) -> None:
        if self.size < 4 or self.size % 4:
            raise ConfigError(f"prior_args.size must be a positive multiple of 4, got {self.size}")
        if self.latent_dim < 1 or self.batch_size < 1:
            raise ConfigError("prior_args.latent_dim and prior_args.batch_size must be positive")


class ConvAutoencoder(nn.Module):
    """Two stride-2 convolutions down, a linear code, the mirror image up; `variational` adds logvar."""

    def __init__(self, size: int, latent_dim: int, variational: bool, beta: float = 1.0):
        super().__init__()
        self.beta = beta
        self.side = size // 4
        flat = 64 * self.side * self.side
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 2, 1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(flat, latent_dim * (2 if variational else 1)),
        )
        self.decoder_in = nn.Linear(latent_dim, flat)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 3, 4, 2, 1),
        )
        self.variational = variational

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        code = self.encoder(x)
        return code.chunk(2, dim=1) if self.variational else (code, None)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.decoder_in(z).view(len(z), 64, self.side, self.side))

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mu, logvar = self.encode(x)
        if not self.variational:
            return F.mse_loss(self.decode(mu), x)
        assert logvar is not None  # a variational encoder gives one
        noise = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + noise * torch.exp(0.5 * logvar)
        recon = F.mse_loss(self.decode(z), x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return recon + self.beta * kl


def _prepare(images, size: int, device: torch.device) -> torch.Tensor:
    return to_unit_float(torch.as_tensor(images).to(device), size) * 2 - 1


class _AutoencoderPrior(Prior):
    Params = AutoencoderParams
    variational = False
    what = "autoencoder"  # how progress lines name it

    def identity(self, data) -> dict:
        return {"variational": self.variational}

    def embed(self, data, device: torch.device) -> torch.Tensor:
        p = self.params
        torch.manual_seed(p.seed)
        generator = torch.Generator(device=device).manual_seed(p.seed)
        x = _prepare(data.pretrain.images, p.size, device)
        model = ConvAutoencoder(p.size, p.latent_dim, self.variational, p.beta).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=p.lr)
        for _ in progress(range(p.epochs), f"prior {self.what}: training on {len(x):,} images", unit="epochs"):
            order = torch.randperm(len(x), generator=generator, device=device)
            for start in range(0, len(x), p.batch_size):
                loss = model.loss(x[order[start : start + p.batch_size]], generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            return torch.cat([model.encode(x[s : s + 1024])[0] for s in range(0, len(x), 1024)]).float().cpu()


@PRIORS.register("autoencoder")
class AutoencoderPrior(_AutoencoderPrior):
    """Code of a convolutional autoencoder trained with MSE on the training images."""


@PRIORS.register("vae")
class VAEPrior(_AutoencoderPrior):
    """Posterior mean of a convolutional VAE (Gaussian, beta-weighted KL) trained on the images."""

    variational = True
    what = "VAE"
