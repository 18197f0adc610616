"""MedMNIST sets (PathMNIST, TissueMNIST): the official .npz files, from the data dir, data_path or the
medmnist package's download. These ship an official validation split, which is used as `val`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from benchmark.data.base import (
    DATASETS,
    NATIVE_SIZES,
    DataMissingError,
    DataSource,
    RawDataset,
    Split,
    as_rgb,
    download_or_explain,
)

MEDMNIST_CLASSES = {"pathmnist": 9, "tissuemnist": 8}


def read_medmnist_npz(path: Path) -> RawDataset:
    try:
        with np.load(path) as archive:
            missing = {f"{s}_{p}" for s in ("train", "val", "test") for p in ("images", "labels")} - set(archive.files)
            if missing:
                raise DataMissingError(f"{str(path)!r} is not a MedMNIST .npz: missing arrays {sorted(missing)}")
            parts = {
                s: Split(
                    as_rgb(archive[f"{s}_images"].astype(np.uint8)), archive[f"{s}_labels"].reshape(-1).astype(np.int64)
                )
                for s in ("train", "val", "test")
            }
    except DataMissingError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # no pickles: allow_pickle stays off
        raise DataMissingError(f"{str(path)!r} is not a readable .npz ({type(err).__name__}: {err})") from None
    n_classes = int(max(p.labels.max() for p in parts.values())) + 1
    return RawDataset(parts["train"], parts["test"], [str(c) for c in range(n_classes)], parts["val"])


def _medmnist_loader(name: str):
    def load(source: DataSource) -> RawDataset:
        candidates = [source.data_path] if source.data_path else sorted(source.data_dir.glob(f"{name}*.npz"))
        candidates = [c for c in candidates if c is not None and c.is_file()]
        if candidates:
            return read_medmnist_npz(candidates[0])
        what = f"put {name}.npz (MedMNIST's release file) in the data dir or pass --data-path to it"
        try:
            import medmnist
        except ImportError:
            raise DataMissingError(
                f"{name}: no {name}.npz found; {what} (or pip install medmnist to download)"
            ) from None
        cls = getattr(medmnist, medmnist.INFO[name]["python_class"])
        download_or_explain(name, source, lambda: cls(split="train", root=str(source.data_dir), download=True), what)
        return read_medmnist_npz(sorted(source.data_dir.glob(f"{name}*.npz"))[0])

    return load


for _name in MEDMNIST_CLASSES:
    DATASETS.register(_name)(_medmnist_loader(_name))
    NATIVE_SIZES[_name] = 28  # MedMNIST's default release files (<name>.npz) hold 28 x 28 images
