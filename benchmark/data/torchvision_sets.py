"""CIFAR-10/100, STL-10 and FGVC-Aircraft: torchvision's files in the data dir (downloaded where
internet exists), or an ImageFolder tree / archive given as data_path or found in the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from benchmark.data.base import (
    DATASETS,
    FOLDER_DATASETS,
    NATIVE_SIZES,
    DataMissingError,
    DataSource,
    RawDataset,
    Split,
    cached,
    download_or_explain,
)
from benchmark.data.identity import content_fingerprint
from benchmark.data.imagefolder import read_imagefolder
from benchmark.errors import DamagedFile
from benchmark.safeload import load_array_pickle


def _folder_key(prefix: str, path: Path, size: int | None) -> str:
    """The decoded cache of a folder or archive is keyed by its content, not its name or date."""
    return f"{prefix}-{content_fingerprint(path)}-{size or 'native'}"


def _folder_candidates(source: DataSource, stems: tuple[str, ...]) -> list[Path]:
    """An explicit data_path first, then conventional names in the data dir."""
    if source.data_path is not None:
        if not source.data_path.exists():
            raise DataMissingError(f"data_path {str(source.data_path)!r} does not exist")
        return [source.data_path]
    found = []
    for stem in stems:
        for suffix in (".tar.gz", ".tgz", ".tar", ""):
            candidate = source.data_dir / f"{stem}{suffix}"
            if candidate.exists() and (suffix or (candidate / "train").is_dir() or any(candidate.glob("*/train"))):
                found.append(candidate)
    return found


def _from_folder(name: str, path: Path, source: DataSource) -> RawDataset:
    load = cached(lambda s: _folder_key(name, path, s.image_size), lambda s: read_imagefolder(path, s.image_size))
    return load(source)


def _batch(path: Path, keys: tuple[str, ...]) -> dict:
    """One of CIFAR's pickled batches, read by an unpickler that builds only arrays and containers."""
    if not path.is_file():
        raise DataMissingError(f"{str(path)!r} is missing from the CIFAR batches folder")
    batch = load_array_pickle(path)
    if not isinstance(batch, dict) or any(key not in batch for key in keys):
        raise DamagedFile(path, f"not a CIFAR batch (needs the keys {', '.join(keys)})")
    return batch


def _read_cifar_batches(directory: Path, files: dict[str, list[str]], label_key: str, meta: tuple[str, str]):
    """Read torchvision's pickled CIFAR batches directly (no md5 check: works on any copy)."""
    splits = {}
    for split, names in files.items():
        images, labels = [], []
        for name in names:
            batch = _batch(directory / name, ("data", label_key))
            try:
                images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            except (ValueError, TypeError) as err:
                raise DamagedFile(directory / name, f"its data is not 32x32x3 images ({err})") from None
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        splits[split] = Split(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))
    classes = list(_batch(directory / meta[0], (meta[1],))[meta[1]])
    return RawDataset(splits["train"], splits["test"], classes)


def _cifar_loader(name: str, tv_class: str, batch_dir: str, files, label_key, meta, archive_name: str):
    stems = (f"{name}-jpeg", name)
    what = (
        f"put torchvision's {archive_name} (or its extracted {batch_dir}/) in the data dir, or pass "
        f"--data-path to an ImageFolder directory or .tar.gz archive of train/<class>/* and test/<class>/* "
        f"(e.g. {name}-jpeg.tar.gz)"
    )

    def load(source: DataSource) -> RawDataset:
        folders = _folder_candidates(source, stems)
        if folders:
            return _from_folder(name, folders[0], source)
        directory = source.data_dir / batch_dir
        if not directory.is_dir():
            import torchvision.datasets as tvd

            download_or_explain(name, source, lambda: getattr(tvd, tv_class)(str(source.data_dir), download=True), what)
        return _read_cifar_batches(directory, files, label_key, meta)

    return load


DATASETS.register("cifar10")(
    _cifar_loader(
        "cifar10",
        "CIFAR10",
        "cifar-10-batches-py",
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        "labels",
        ("batches.meta", "label_names"),
        "cifar-10-python.tar.gz",
    )
)
DATASETS.register("cifar100")(
    _cifar_loader(
        "cifar100",
        "CIFAR100",
        "cifar-100-python",
        {"train": ["train"], "test": ["test"]},
        "fine_labels",
        ("meta", "fine_label_names"),
        "cifar-100-python.tar.gz",
    )
)


def _torchvision_split_loader(name: str, build: Callable[[DataSource, str, bool], RawDataset | None], what: str):
    """For sets torchvision reads itself (STL-10, FGVC-Aircraft): folder first, then torchvision."""

    def load(source: DataSource) -> RawDataset:
        folders = _folder_candidates(source, (name,))
        if folders:
            return _from_folder(name, folders[0], source)
        try:
            found = build(source, "local", False)
            assert found is not None  # only mode "fetch" may give None
            return found
        except (RuntimeError, FileNotFoundError):
            pass
        download_or_explain(name, source, lambda: build(source, "fetch", True), what)
        found = build(source, "local", False)
        assert found is not None  # only mode "fetch" may give None
        return found

    return load


def _stl10(source: DataSource, _mode: str, download: bool) -> RawDataset:
    import torchvision.datasets as tvd

    parts = {}
    for split in ("train", "test"):
        ds = tvd.STL10(str(source.data_dir), split=split, download=download)
        parts[split] = Split(np.ascontiguousarray(ds.data.transpose(0, 2, 3, 1)), ds.labels.astype(np.int64))
    return RawDataset(parts["train"], parts["test"], list(ds.classes))


def _fgvc_aircraft(source: DataSource, mode: str, download: bool) -> RawDataset | None:
    import torchvision.datasets as tvd

    size = source.image_size or 224
    parts = {}
    for split, tv_split in (("train", "trainval"), ("test", "test")):
        ds = tvd.FGVCAircraft(str(source.data_dir), split=tv_split, annotation_level="variant", download=download)
        if mode == "fetch":
            continue
        images = np.stack([np.asarray(ds[i][0].convert("RGB").resize((size, size))) for i in range(len(ds))])
        parts[split] = Split(images, np.asarray(ds._labels, dtype=np.int64))
    return RawDataset(parts["train"], parts["test"], list(ds.classes)) if parts else None


DATASETS.register("stl10")(
    _torchvision_split_loader(
        "stl10",
        _stl10,
        "put torchvision's stl10_binary/ (from stl10_binary.tar.gz) in the data dir, or pass --data-path to an "
        "ImageFolder tree of train/<class>/* and test/<class>/*",
    )
)
DATASETS.register("fgvc_aircraft")(
    cached(
        lambda s: f"fgvc_aircraft-{s.image_size or 224}",
        _torchvision_split_loader(
            "fgvc_aircraft",
            _fgvc_aircraft,
            "put torchvision's fgvc-aircraft-2013b/ in the data dir, or pass --data-path to an ImageFolder "
            "tree of train/<class>/* and test/<class>/*",
        ),
    )
)


@DATASETS.register("imagefolder")
def load_imagefolder(source: DataSource) -> RawDataset:
    if source.data_path is None:
        raise DataMissingError(
            "imagefolder needs data_path (--data-path): a directory or .tar/.tar.gz archive of "
            "train/<class>/* and test/<class>/*"
        )
    return _from_folder("imagefolder", source.data_path, source)


FOLDER_DATASETS.add("imagefolder")
# CIFAR's 32 px, STL-10's 96 px; FGVC-Aircraft is resized to 224 px on load unless image_size
NATIVE_SIZES.update({"cifar10": 32, "cifar100": 32, "stl10": 96, "fgvc_aircraft": 224})
