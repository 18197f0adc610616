"""What every prior shares: its registry, its spec syntax, and the context it embeds in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmark.registry import Registry
from benchmark.rundir import default_results_dir

PRIORS: Registry[type] = Registry("prior")


@dataclass(frozen=True)
class PriorContext:
    """Where a prior may look for things: the results tree (for `run:` priors)."""

    results_dir: Path = field(default_factory=default_results_dir)


class Prior:
    """An embedding g(x) of the training images. Subclasses set Params, and `needs_arg` when the
    spec takes `kind:arg` (a model name, a run). `identity()` lists everything besides the dataset
    that changes the embedding (weights hash, input size, normalisation): it keys the cache."""

    Params: type
    needs_arg = False

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
