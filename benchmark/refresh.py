"""Refreshing a GPS run's neighbour table from the model being trained (`refresh_every`, `refresh_from`).

The official GPS code can rebuild its neighbour table every r epochs (`data.reload_freq`) from the
network being trained, its backbone features or its projector output (`nn_key: feats | z`), after
starting from the prior's table; with the trained model as g the pairs become NNCLR-like (the paper's
Proposition 1). Here a refresh embeds every pretraining image with the current model (eval mode, no
augmentation, on the run's device; BatchNorm statistics untouched), builds the table with the same
search code, metric and index choice as the prior's (`neighbors.build_table`), and swaps the sampler
between epochs. The table is part of the checkpoint, so a resumed run draws from the table it had.
What may be refreshed (refresh_every, refresh_from) the config checks (RunConfig.check_refresh).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmark.assembly import RunParts
from benchmark.config import RunConfig
from benchmark.distributed import broadcast
from benchmark.evaluate import extract_features
from benchmark.methods import SOURCES
from benchmark.neighbors import NeighborTable, build_table, prior_nn_agreement, rule_sampler


def refresh_due(config: RunConfig, epoch: int) -> bool:
    """After epochs r, 2r, ... that leave at least one epoch to train with the new table."""
    return config.refresh_every > 0 and epoch % config.refresh_every == 0 and epoch < config.epochs


@torch.no_grad()
def embed_for_refresh(parts: RunParts) -> torch.Tensor:
    """Every pretraining image through the current model, in eval mode, without augmentation."""
    source = SOURCES.get(parts.config.refresh_from)
    method, data = parts.method, parts.data
    return extract_features(
        method,
        parts.images,
        data.mean,
        data.std,
        parts.device,
        autocast_dtype=parts.amp_dtype,
        forward=lambda x: source(method, x),
    )


def table_overlap(new: np.ndarray, old: np.ndarray, k: int) -> float:
    """Mean fraction of each image's k nearest neighbours that the two tables share."""
    shared = (new[:, :k, None] == old[:, None, :k]).any(axis=2)
    return float(shared.mean())


def refresh_table(parts: RunParts, epoch: int) -> dict:
    """Rebuild the table from the current model and swap the sampler; returns the epoch's metrics:
    the new table's agreement with labels, its overlap with the table it replaces, its seconds (and
    the radius, for rules with one: adaptive tau is recomputed from the new distances, as the official
    code recomputes its adaptive threshold at each reload). With several processes, rank 0 builds the
    table and broadcasts it, so every rank draws from the same one."""
    started = time.perf_counter()
    config, old = parts.config, parts.gps.table
    assert old is not None, "refresh needs a neighbour table (validated: a prior with needs_k)"
    n, width = old.index.shape
    index = torch.empty((n, width), dtype=torch.int32, device=parts.device)
    dist = torch.empty((n, width), dtype=torch.float32, device=parts.device)
    method, recall = old.method, None
    if parts.ranks.is_main:
        built = build_table(embed_for_refresh(parts), width, config.metric, config.knn_index, parts.device)
        index.copy_(torch.from_numpy(built.index))
        dist.copy_(torch.from_numpy(built.dist))
        method, recall = built.method, built.recall
    broadcast(index)
    broadcast(dist)
    table = NeighborTable(index.cpu().numpy(), dist.cpu().numpy(), config.metric, method, 0.0, False, recall)
    tau = install_table(parts, table, epoch)
    table.seconds = time.perf_counter() - started
    metrics = {
        "refresh_agreement": prior_nn_agreement(table.index, parts.data.pretrain.labels, config.k),
        "refresh_overlap": table_overlap(table.index, old.index, config.k),
        "refresh_seconds": table.seconds,
    }
    if recall is not None:
        metrics["refresh_recall"] = recall
    if tau is not None:
        metrics["refresh_tau"] = tau
    return metrics


def install_table(parts: RunParts, table: NeighborTable, epoch: int) -> float | None:
    """Make `table` the one the run draws from (built at the end of `epoch`); returns the rule's radius."""
    sampler, tau = rule_sampler(parts.config, table.index, table.dist, parts.device)
    parts.gps.sampler, parts.gps.table, parts.refreshed_at = sampler, table, epoch
    return tau


def table_state(parts: RunParts) -> dict | None:
    """What a checkpoint holds of the table: nothing while the run draws from the prior's (rebuilt from
    its cache on resume), else the refreshed table itself (N x K int32 and float32)."""
    table = parts.gps.table
    if parts.refreshed_at == 0 or table is None:
        return None
    return {
        "epoch": parts.refreshed_at,
        "index": torch.from_numpy(table.index),
        "dist": torch.from_numpy(table.dist),
        "method": table.method,
        "recall": table.recall,
    }


def restore_table(parts: RunParts, saved: dict | None) -> None:
    """Resume with the table the checkpoint's run drew from."""
    if saved is None:
        return
    table = NeighborTable(
        saved["index"].numpy(), saved["dist"].numpy(), parts.config.metric, saved["method"], 0.0, False, saved["recall"]
    )
    install_table(parts, table, int(saved["epoch"]))
