"""What every prior shares: its registry, its spec syntax, and the context it embeds in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmark.registry import Registry
from benchmark.rundir import default_results_dir

PRIORS: Registry[type[Prior]] = Registry("prior")


@dataclass(frozen=True)
class PriorContext:
    """Where a prior may look for things: the results tree (for `run:` priors)."""

    results_dir: Path = field(default_factory=default_results_dir)


class Prior:
    """An embedding g(x) of the training images. Subclasses set Params, and `needs_arg` when the
    spec takes `kind:arg` (a model name, a run). `identity()` lists everything besides the dataset
    that changes the embedding (weights hash, input size, normalisation): it keys the cache.

    What a prior is, for the config, the sampler and the tables, it says itself (never its name):
    `plain` (the positive is the anchor: plain SSL whatever k), `needs_k` (False: it draws positives
    itself with `positives()`, no neighbour table, no k), `uses_labels` (an upper bound: named so in
    tables, never marked best)."""

    Params: type
    needs_arg = False
    plain = False
    needs_k = True
    uses_labels = False

    def __init__(self, arg: str | None, params, context: PriorContext):
        self.arg, self.params, self.context = arg, params, context

    @classmethod
    def check_arg(cls, arg: str) -> None:
        """Config-time check of the spec's argument (e.g. the model name exists)."""

    @classmethod
    def table_name(cls, spec: str, arg: str | None) -> str:
        """How tables and plots name the prior: its spec, and that it uses labels where it does."""
        return f"{spec}: uses labels" if cls.uses_labels else spec

    def positives(self, data, device: torch.device):
        """A prior with needs_k False: its pair sampler and that sampler's neighbour agreement."""
        raise NotImplementedError

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
