"""Which of a method's networks an embedding of the training images is taken from (`refresh_from`):
its backbone's features or its projector's output, the official GPS code's `feats` and `z`. A refreshed
neighbour table (benchmark/refresh.py) embeds with one; the config checks the name here."""

from __future__ import annotations

from typing import Callable

import torch

from benchmark.methods.base import SSLMethod
from benchmark.registry import Registry

Embedder = Callable[[SSLMethod, torch.Tensor], torch.Tensor]
SOURCES: Registry[Embedder] = Registry("refresh_from")


@SOURCES.register("backbone")
def _backbone(method: SSLMethod, x: torch.Tensor) -> torch.Tensor:
    """The backbone's features, as the kNN evaluation sees them (the official code's `feats`)."""
    return method.backbone(x)


@SOURCES.register("projector")
def _projector(method: SSLMethod, x: torch.Tensor) -> torch.Tensor:
    """The method's projector head on the backbone's features (the official code's `z`)."""
    return method.projector(method.backbone(x))
