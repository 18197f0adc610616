"""Pair samplers: given a batch of anchor indices, the index of each anchor's positive.

Plain SSL pairs an image with itself (two augmentations of one image); GPS pairs it with one of its
nearest neighbours in a prior embedding. Samplers run on the device: indices in, indices out, no
per-sample Python, so the training step never waits on the host.
"""

from __future__ import annotations

from typing import Protocol

import torch


class PairSampler(Protocol):
    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


class IdentitySampler:
    """Plain SSL (prior none or k = 0): the positive of x is x itself."""

    def __call__(self, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return anchors


def build_sampler(config, num_train: int, device: torch.device) -> PairSampler:
    """The sampler a run's config asks for (RunConfig.validate admits only plain SSL for now)."""
    return IdentitySampler()
