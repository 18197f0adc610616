"""In-memory datasets as uint8 arrays, with the train/val/test contract every run relies on."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from benchmark.errors import ConfigError
from benchmark.registry import Registry

VAL_SEED = 20240102  # fixed: the validation split never depends on the run's seed


class DataMissingError(ConfigError):
    """No files for a dataset and no way to download them: says which files to put where."""


@dataclass
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> "Split":
        return Split(self.images[index], self.labels[index])


@dataclass
class RawDataset:
    """What a loader returns: the official splits; `val` only where the dataset ships one."""

    train: Split
    test: Split
    classes: list[str]
    val: Split | None = None


@dataclass
class DatasetSplits:
    """`train` and `val` partition the official training split when val is carved from it (the
    labelled splits the probe is fit and chosen on); `pretrain` is every training image, which
    self-supervised pretraining, priors and the kNN bank use (labels unused by pretraining)."""

    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]
    # per-channel (3 values), in [0, 1]: the references' fixed constants, else of the pretraining images
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_carved: bool = True  # False where the dataset ships its own validation split (MedMNIST)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.train.images.shape[1]

    @functools.cached_property
    def pretrain(self) -> Split:
        """train + val (rows in that order) where val was carved from train, else train."""
        if not self.val_carved:
            return self.train
        return Split(
            np.concatenate([self.train.images, self.val.images]), np.concatenate([self.train.labels, self.val.labels])
        )

    def fingerprint(self) -> str:
        """Content hash of the pretraining images and labels: keys caches that depend on the data."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.pretrain.images).data)
        digest.update(np.ascontiguousarray(self.pretrain.labels).data)
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class DataSource:
    """Where a loader may look: the data dir (caches, torchvision files), an explicit path, the network."""

    data_dir: Path
    data_path: Path | None = None
    download: bool = True
    image_size: int | None = None


Loader = Callable[[DataSource], RawDataset]
DATASETS: Registry[Loader] = Registry("dataset")
FOLDER_DATASETS: set[str] = set()  # loaders of any data set given as data_path: tables name it by that path
# the side its images load at without `image_size`, for the data sets that have one (a folder's depends
# on its files): what a recipe's image-size rules read before any data is loaded
NATIVE_SIZES: dict[str, int] = {}


def table_name(dataset: str, data_path: str | Path | None) -> str:
    """How tables name a run's data set: its registered name, or for a folder loader (a custom set)
    the name of its data_path without the archive suffix (`/data/rhid.tar.gz` -> `rhid`)."""
    if dataset not in FOLDER_DATASETS or not data_path:
        return dataset
    name = Path(str(data_path).rstrip("/")).name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        name = name.removesuffix(suffix)
    return name or dataset


def default_data_dir() -> Path:
    return Path(os.environ.get("GPSBENCH_DATA", "data"))


def class_balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of n samples with classes as equal as the data allows (round-robin over shuffled classes)."""
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for members in per_class:
            if depth < len(members) and len(picked) < n:
                picked.append(int(members[depth]))
        depth += 1
    return np.sort(np.array(picked))


def carve_validation(train: Split, fraction: float, maximum: int) -> tuple[Split, Split]:
    """Stratified, seeded split of train into (train, val); val = fraction of train, at most `maximum`."""
    n_val = min(maximum, max(1, int(round(fraction * len(train)))))
    val_index = class_balanced_subset(train.labels, n_val, VAL_SEED)
    keep = np.ones(len(train), dtype=bool)
    keep[val_index] = False
    return train.take(np.flatnonzero(keep)), train.take(val_index)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1], on at most 10,000 images (enough for 3 decimals)."""
    sample = images[:: max(1, len(images) // 10_000)].astype(np.float64) / 255.0
    mean = sample.mean(axis=(0, 1, 2))
    std = sample.std(axis=(0, 1, 2)) + 1e-6
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def download_or_explain(name: str, source: DataSource, fetch: Callable[[], object], what: str) -> None:
    """Run torchvision's download; any failure (no internet) becomes one line saying what to put where."""
    if not source.download:
        raise DataMissingError(f"{name}: no data in {str(source.data_dir)!r} and download is off; {what}")
    try:
        fetch()
    except Exception as err:  # network errors come in many types; the message is what matters
        raise DataMissingError(
            f"{name}: no data in {str(source.data_dir)!r} and the download failed ({type(err).__name__}); {what}"
        ) from None


# ---------------------------------------------------------------------- cache
def cache_dir(source: DataSource, key: str) -> Path:
    return source.data_dir / "cache" / key


def load_cached(directory: Path) -> RawDataset | None:
    """The cached arrays; None when there are none or they are damaged (then they are decoded again)."""
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        splits = {}
        for name in meta["splits"]:
            splits[name] = Split(np.load(directory / f"{name}_images.npy"), np.load(directory / f"{name}_labels.npy"))
        return RawDataset(splits["train"], splits["test"], meta["classes"], splits.get("val"))
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None


def save_cached(directory: Path, raw: RawDataset) -> None:
    """Write the decoded arrays once; meta.json is written last so a half-written cache is never read."""
    from benchmark.rundir import atomic_write_arrays, atomic_write_json

    names = ["train", "test"] + (["val"] if raw.val is not None else [])
    for name in names:
        split: Split = getattr(raw, name)
        for part, array in (("images", split.images), ("labels", split.labels)):
            atomic_write_arrays(directory / f"{name}_{part}.npy", array)
    atomic_write_json(directory / "meta.json", {"splits": names, "classes": raw.classes})


def cached(key: Callable[[DataSource], str], build: Loader) -> Loader:
    """Wrap a loader so its decoded arrays are cached as .npy under the data dir, keyed by `key`."""

    def load(source: DataSource) -> RawDataset:
        directory = cache_dir(source, key(source))
        raw = load_cached(directory)
        if raw is None:
            raw = build(source)
            save_cached(directory, raw)
        return raw

    return load


def as_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1) grey images -> (N, H, W, 3); RGB passes through."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.ascontiguousarray(images)
