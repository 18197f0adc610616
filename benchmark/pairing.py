"""From a run's config to its pair sampler: the prior's embedding, its neighbour table, the rule.

The pairing of a prior (benchmark/priors) with a sampling rule (benchmark/neighbors) sits above both,
so neither package imports the other's way up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmark.config import RunConfig
from benchmark.data import DatasetSplits, default_data_dir
from benchmark.errors import ConfigError
from benchmark.neighbors import (
    SAMPLING_RULES,
    IdentitySampler,
    NeighborTable,
    PairSampler,
    candidate_report,
    neighbor_table,
    prior_nn_agreement,
    rule_sampler,
    sampling_args,
)
from benchmark.priors import PriorContext, build_prior, prior_embeddings
from benchmark.rundir import default_results_dir


@dataclass
class GPSSetup:
    """A run's sampler and what it cost and found (reported in result.json and `gpsbench prior`)."""

    sampler: PairSampler
    prior_nn_agreement: float | None = None
    report: dict = field(default_factory=dict)
    table: NeighborTable | None = None  # the table the sampler draws from (benchmark/refresh.py swaps both)


def build_sampler(
    config: RunConfig,
    data: DatasetSplits,
    device: torch.device,
    cache_root: Path | None = None,
    results_dir: Path | None = None,
) -> GPSSetup:
    """The pair sampler of a run: identity for plain SSL, the prior's own for a prior that needs no k
    (the oracle's same-class draw), else the rule over the prior's cached neighbour table."""
    if not config.is_gps:
        return GPSSetup(IdentitySampler())
    results_dir = Path(results_dir or default_results_dir())
    prior = build_prior(config.prior, config.prior_args, PriorContext(results_dir))
    if not prior.needs_k:
        sampler, agreement = prior.positives(data, device)
        return GPSSetup(sampler, agreement, {"prior": config.prior + (" (uses labels)" if prior.uses_labels else "")})
    rule = SAMPLING_RULES.get(config.sampling)
    width = max(config.k, config.tau_neighbors if rule.needs_radius else 0)  # adaptive tau reads m columns
    n_images = len(data.pretrain)  # the table covers every image pretraining sees
    if width < n_images:  # a rule that reads a wider pool (k-means clusters) reads at most every other image
        width = max(
            width, min(rule.columns(config.k, sampling_args(config.sampling, config.sampling_args)), n_images - 1)
        )
    if width >= n_images:
        asked = f"k={config.k}" + (f" (tau_neighbors={config.tau_neighbors})" if width > config.k else "")
        raise ConfigError(
            f"{asked} asks for {width} neighbours of each of the {n_images} training images of "
            f"{config.dataset}; valid: k from 1 to {n_images - 1}"
        )
    cache_root = Path(cache_root or Path(config.data_dir or default_data_dir()) / "cache")
    embedding = prior_embeddings(prior, config.prior, data, cache_root, device)
    table = neighbor_table(embedding.vectors, embedding.key, width, config.metric, config.knn_index, cache_root, device)
    sampler, tau = rule_sampler(config, table.index, table.dist, device, embedding.vectors)
    agreement = prior_nn_agreement(table.index, data.pretrain.labels, config.k)
    report = {
        "prior": config.prior,
        "embedding_key": embedding.key,
        "embedding_dim": int(embedding.vectors.shape[1]),
        "embedding_seconds": embedding.seconds,
        "embedding_cached": embedding.cached,
        "table_seconds": table.seconds,
        "table_cached": table.cached,
        "table_method": table.method,
        "table_recall": table.recall,
        "tau": tau,
        **candidate_report(sampler, data.pretrain.labels),
    }
    return GPSSetup(sampler, agreement, report, table)
