"""The data path against a DataLoader, per method recipe: each distinct pair of pipelines that the
methods' `aug` resolves to (the methods sharing one are measured once), as the run's data path
(sampler + gather + one batched augmentation call) and as a torch DataLoader applying the same two
pipelines with torchvision on PIL images in W workers. Each recipe's two views are measured as its
plain runs use them (anchor through the first pipeline, positive through the second), so that every
per-view operation of the recipe (blur, solarisation) is timed. Views/s count augmented views."""

from __future__ import annotations

from typing import Any

import torch

from benchmark.assembly import build_parts
from benchmark.augment import BatchAugment, ViewPair, resolve_aug_params
from benchmark.config import RunConfig
from benchmark.data import DatasetSplits
from benchmark.methods import METHODS
from benchmark.perf.step import _endless, _rate, two_view_loader


def recipe_groups(aug: str, aug_args: dict, image_size: int) -> list[tuple[list[str], ViewPair]]:
    """The methods grouped by the pipelines `aug` gives them at this image size, in registry order."""
    groups: dict[ViewPair, list[str]] = {}
    for name in METHODS.names():
        pair = resolve_aug_params(aug, aug_args, image_size, METHODS.get(name).recipe.strong)
        groups.setdefault(pair, []).append(name)
    return [(methods, pair) for pair, methods in groups.items()]


def recipe_figures(
    config: RunConfig, data: DatasetSplits, device: torch.device, quick: bool, workers: int
) -> list[dict]:
    """Per recipe: the methods, the pipelines' source, both rates (views/s) and their ratio; --quick
    times each for 3 s (at least one call) after one warm-up call, else 20 s and 5 calls."""
    parts = build_parts(config, data, device)
    budget: dict[str, Any] = (
        dict(warmup=1, seconds=3.0, min_calls=1) if quick else dict(warmup=3, seconds=20.0, min_calls=5)
    )
    batch, n = config.batch_size, len(parts.images)
    rows = []
    for methods, pair in recipe_groups(config.aug, config.aug_args, data.image_size):
        augment = BatchAugment(pair, data.mean, data.std, device, seed=config.seed)

        def data_path(augment: BatchAugment = augment) -> None:
            anchors = torch.randint(0, n, (batch,), generator=parts.generator, device=device)
            positives = parts.gps.sampler(anchors, parts.generator)
            augment(parts.images[torch.cat([anchors, positives])], parts.generator)

        loader = two_view_loader(data, pair, batch, workers, persistent=False)
        ours = _rate(data_path, 2 * batch, device, **budget)
        theirs = _rate(_endless(loader).__next__, 2 * batch, device, **budget)
        del loader  # its workers end with their iterator, before the next recipe's start
        source = (
            config.aug if config.aug != "strong" else METHODS.get(methods[0]).recipe.strong.at(data.image_size).source
        )
        rows.append(
            {
                "methods": methods,
                "source": source,
                "data_pipeline": ours,
                "dataloader": theirs,
                "data_pipeline_vs_dataloader": ours / theirs,
            }
        )
    return rows


def format_recipes(rows: list[dict]) -> list[str]:
    lines = ["data path vs DataLoader per recipe (views/s):"]
    for row in rows:
        lines.append(
            f"  {', '.join(row['methods']):<34}{row['data_pipeline']:>10.0f} / {row['dataloader']:>8.0f}"
            f" = {row['data_pipeline_vs_dataloader']:.2f}  ({row['source']})"
        )
    return lines
