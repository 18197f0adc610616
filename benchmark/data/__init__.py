"""Named datasets as uint8 arrays with train / val / test splits (see base.py for the contract)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

import numpy as np

from benchmark.data import medmnist_sets, small, torchvision_sets  # noqa: F401  (register loaders)
from benchmark.data.base import (
    DATASETS,
    NATIVE_SIZES,
    VAL_SEED,
    DataMissingError,
    DatasetSplits,
    DataSource,
    Split,
    carve_validation,
    channel_stats,
    class_balanced_subset,
    default_data_dir,
    table_name,
)
from benchmark.data.normalization import reference_normalization
from benchmark.errors import ConfigError

__all__ = [
    "DATASETS",
    "DataMissingError",
    "DatasetSplits",
    "Split",
    "load_dataset",
    "load_run_data",
    "planned_image_size",
    "default_data_dir",
    "table_name",
]


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    data_path: str | Path | None = None,
    subset: int | None = None,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    val_max: int = 5000,
    download: bool = True,
) -> DatasetSplits:
    """Load (decoding once, then from the .npy cache), resize, subset, and carve the validation split.

    `subset` takes a class-balanced subset of the official training split first; val is then carved
    from it with a fixed seed, so val never depends on the run's seed.
    """
    loader = DATASETS.get(name)
    source = DataSource(
        data_dir=Path(data_dir) if data_dir is not None else default_data_dir(),
        data_path=Path(data_path) if data_path is not None else None,
        download=download,
        image_size=image_size,
    )
    raw = loader(source)
    train, test, val = raw.train, raw.test, raw.val
    if image_size is not None:
        train, test = _resize(train, image_size), _resize(test, image_size)
        val = _resize(val, image_size) if val is not None else None
    if subset is not None:
        if subset > len(train):  # all of it under another run_id: refused, as a batch larger than the data is
            raise ConfigError(
                f"subset {subset} is more than the {len(train)} training images of {name}; valid: 1 to {len(train)}"
            )
        train = train.take(class_balanced_subset(train.labels, subset, VAL_SEED + 1))
    carved = val is None
    if val is None:
        train, val = carve_validation(train, val_fraction, val_max)
    elif len(val) > val_max:
        val = val.take(class_balanced_subset(val.labels, val_max, VAL_SEED))
    if len(np.unique(train.labels)) < 2:
        print(
            f"gpsbench: warning: {name}: the training split holds a single class: kNN and linear-probe "
            f"accuracies are 1.0 whatever the model learns",
            file=sys.stderr,
        )
    splits = DatasetSplits(name, train, val, test, list(raw.classes), (0.0,) * 3, (1.0,) * 3, val_carved=carved)
    fixed = reference_normalization(name)  # the references' constants where they have them (normalization.py)
    splits.mean, splits.std = (fixed.mean, fixed.std) if fixed else channel_stats(splits.pretrain.images)
    return splits


class DataChoice(Protocol):
    """What a run's config says of its data (RunConfig has these fields)."""

    @property
    def dataset(self) -> str: ...
    @property
    def data_dir(self) -> str | None: ...
    @property
    def data_path(self) -> str | None: ...
    @property
    def subset(self) -> int | None: ...
    @property
    def image_size(self) -> int | None: ...
    @property
    def val_fraction(self) -> float: ...
    @property
    def val_max(self) -> int: ...


def load_run_data(config: DataChoice) -> DatasetSplits:
    """The data of a run as its RunConfig describes it: train, the prior command, perf and the GPU check
    read it here, so they all see the same images and splits."""
    return load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        data_path=config.data_path,
        subset=config.subset,
        image_size=config.image_size,
        val_fraction=config.val_fraction,
        val_max=config.val_max,
    )


def planned_image_size(config) -> int | None:
    """The side a run's images will have, known from its config alone: `image_size`, else the data
    set's native size (NATIVE_SIZES); None for a folder of images without `image_size`."""
    return config.image_size if config.image_size is not None else NATIVE_SIZES.get(config.dataset)


def _resize(split: Split, size: int) -> Split:
    """Antialiased resize of uint8 images (done once at load, never per step)."""
    if split.images.shape[1] == size and split.images.shape[2] == size:
        return split
    import torch

    from benchmark.augment import to_unit_float

    out = []
    for start in range(0, len(split), 4096):
        chunk = to_unit_float(torch.from_numpy(split.images[start : start + 4096]), size) * 255
        out.append(chunk.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return Split(np.ascontiguousarray(np.concatenate(out)), split.labels)
