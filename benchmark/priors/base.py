"""What every prior shares: its registry, its spec syntax, and the context it embeds in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.registry import Registry

PRIORS: Registry[type] = Registry("prior")


@dataclass(frozen=True)
class PriorContext:
    """Where a prior may look for things: the results tree (for `run:` priors)."""

    results_dir: Path = field(default_factory=lambda: Path("results"))


class Prior:
    """An embedding g(x) of the training images. Subclasses set Params, and `needs_arg` when the
    spec takes `kind:arg` (a model name, a run). `identity()` lists everything besides the dataset
    that changes the embedding (weights hash, input size, normalisation): it keys the cache."""

    Params: type
    needs_arg = False
    uses_labels = False

    def __init__(self, arg: str | None, params, context: PriorContext):
        self.arg, self.params, self.context = arg, params, context

    @classmethod
    def check_arg(cls, arg: str | None) -> None:
        """Config-time check of the spec's argument (e.g. the model name exists)."""

    def identity(self, data) -> dict:
        return {}

    def embed(self, data, device: torch.device) -> torch.Tensor:
        raise NotImplementedError


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


@torch.no_grad()
def embed_with(model: torch.nn.Module, images: np.ndarray, device: torch.device, mean, std,
               size: int | None = None, batch_size: int = 256, forward=None) -> torch.Tensor:
    """Embed uint8 NHWC images with a frozen network, in batches on the device: resize (bilinear,
    antialiased) to the network's input size, normalise with its statistics, float32 out on the CPU."""
    model = model.to(device).eval()
    forward = forward or model
    mean_t = torch.tensor(mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
        if size is not None and x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(forward((x - mean_t) / std_t).float().flatten(1).cpu())
    return torch.cat(out)
