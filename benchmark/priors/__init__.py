"""Priors: named embeddings g(x) of the training images, in which GPS finds each image's positives.

A spec is `kind` or `kind:arg` (`pixel`, `timm:resnet50`, `run:results/sweep/3f2a...`); `prior_args`
overrides the kind's own settings. Embeddings are computed once, in batches on the device, and cached
under a key of everything that changes them (see `embedding_key`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from benchmark.errors import ConfigError
from benchmark.params import resolve_params
from benchmark.priors import autoencoder, networks, simple  # noqa: F401  (register priors)
from benchmark.priors.base import PRIORS, Prior, PriorContext
from benchmark.progress import say
from benchmark.rundir import atomic_write_arrays, atomic_write_json

__all__ = [
    "PRIORS",
    "Prior",
    "PriorContext",
    "build_prior",
    "check_prior",
    "gives_gps",
    "is_plain",
    "parse_prior",
    "prior_class",
    "prior_embeddings",
    "table_name",
]


def parse_prior(spec: str) -> tuple[str, str | None]:
    kind, sep, arg = spec.partition(":")
    return kind, (arg if sep else None)


def prior_class(spec: str) -> type[Prior]:
    """The class of a spec's kind, whose attributes say what the prior is (ConfigError if none)."""
    return PRIORS.get(parse_prior(spec)[0])


def is_plain(spec: Any) -> bool:
    """Whether a spec names a plain prior (the positive is the anchor); False for anything that names no
    prior, which validation reports."""
    return isinstance(spec, str) and parse_prior(spec)[0] in PRIORS and prior_class(spec).plain


def gives_gps(spec: str, k: int | None) -> bool:
    """GPS positives rather than plain SSL: a prior that is not plain, with k >= 1 unless it draws
    positives itself (needs_k False). A k that is not known (None, NaN: a table row without k) counts as set."""
    cls = prior_class(spec)
    return not cls.plain and (not cls.needs_k or k != 0)


def table_name(spec: str) -> str:
    """How tables name a prior spec (see Prior.table_name); a kind no longer registered, as it is."""
    kind, arg = parse_prior(spec)
    return PRIORS.get(kind).table_name(spec, arg) if kind in PRIORS else spec


def check_prior(spec: str, args: Mapping[str, Any]) -> None:
    """Config-time validation: the kind exists, its argument is there (and valid), its args type-check."""
    kind, arg = parse_prior(spec)
    cls = PRIORS.get(kind)
    if cls.needs_arg and not arg:
        raise ConfigError(
            f"prior {spec!r} needs an argument: {kind}:<{'model' if kind != 'run' else 'run dir or run_id'}>"
        )
    if not cls.needs_arg and arg is not None:
        raise ConfigError(f"prior {kind!r} takes no argument, got {spec!r}")
    if arg is not None:
        cls.check_arg(arg)
    resolve_params(cls.Params, args, "prior_args", kind)


def build_prior(spec: str, args: Mapping[str, Any], context: PriorContext | None = None) -> Prior:
    check_prior(spec, args)
    kind, arg = parse_prior(spec)
    cls = PRIORS.get(kind)
    return cls(arg, resolve_params(cls.Params, args, "prior_args", kind), context or PriorContext())


def embedding_key(prior: Prior, spec: str, data) -> str:
    """Hash of the dataset's content fingerprint, the prior spec and settings, and the prior's own
    identity (weights hash, input size, normalisation)."""
    parts = {
        "data": data.fingerprint(),
        "prior": spec,
        "params": dataclasses.asdict(prior.params),
        "identity": prior.identity(data),
    }
    canonical = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class Embedding:
    vectors: torch.Tensor  # (N_train, D) float32, CPU
    key: str
    seconds: float  # time to compute, or to read the cache
    cached: bool


def prior_embeddings(prior: Prior, spec: str, data, cache_root: Path, device: torch.device) -> Embedding:
    """The prior's embedding of the pretraining images (every training image): from the cache, or
    computed and cached."""
    started = time.perf_counter()
    key = embedding_key(prior, spec, data)
    path = Path(cache_root) / "embeddings" / f"{key}.npy"
    if path.is_file():
        try:
            vectors = torch.from_numpy(np.load(path))
            return Embedding(vectors, key, time.perf_counter() - started, cached=True)
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache file: computed again
    # no line before embed(): a prior whose files are refused (a crafted checkpoint) errs in one line;
    # the networks' batches and the autoencoder's epochs report their own progress while it runs
    vectors = prior.embed(data, device).float().contiguous()
    if len(vectors) != len(data.pretrain) or not torch.isfinite(vectors).all():
        raise RuntimeError(
            f"prior {spec!r} gave {tuple(vectors.shape)} embeddings (finite: "
            f"{bool(torch.isfinite(vectors).all())}) for {len(data.pretrain)} images"
        )
    atomic_write_arrays(path, vectors.numpy())
    atomic_write_json(path.with_suffix(".json"), {"prior": spec, "dataset": data.name, "shape": list(vectors.shape)})
    say(f"prior {spec}: {len(vectors):,} x {vectors.shape[1]} embedding in {time.perf_counter() - started:.1f} s")
    return Embedding(vectors, key, time.perf_counter() - started, cached=False)
