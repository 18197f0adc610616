"""ImageFolder trees, as a directory or a .tar/.tar.gz archive: `train/<class>/*` and `test/<class>/*`.

This is how users bring their own data (R-HID, a JPEG copy of CIFAR-10, ...). Archives are read
without extracting; images are decoded once in parallel and cached as .npy by the caller.
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data.base import DataMissingError, RawDataset, Split

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/[^/]+$")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def read_imagefolder(path: Path, image_size: int | None = None, workers: int | None = None) -> RawDataset:
    """Decode every image of a folder tree or archive into uint8 arrays (RGB, one common size)."""
    path = Path(path)
    if is_archive(path):
        entries = _archive_entries(path)
    elif path.is_dir():
        entries = [(split, cls, p.name, p.read_bytes(), str(p)) for split, cls, p in _directory_entries(path)]
    else:
        raise DataMissingError(
            f"no ImageFolder tree at {str(path)!r}: give a directory or a .tar/.tar.gz archive holding "
            "train/<class>/<image> and test/<class>/<image>"
        )
    classes = sorted({e[1] for e in entries if e[0] == "train"})
    if not classes:
        raise DataMissingError(f"{str(path)!r} holds no images under train/<class>/")
    unknown = sorted({e[1] for e in entries if e[0] == "test"} - set(classes))
    if unknown:
        raise DataMissingError(f"{str(path)!r}: test classes {unknown} have no train folder")
    if not any(e[0] == "test" for e in entries):
        raise DataMissingError(f"{str(path)!r} holds no images under test/<class>/")
    index = {c: i for i, c in enumerate(classes)}
    entries.sort(key=lambda e: e[:3])  # (split, class, file name): the same order from a tar or a folder
    images = _decode_all([(e[4], e[3]) for e in entries], image_size, workers)
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise DataMissingError(
            f"{str(path)!r}: images differ in size ({sorted(sizes)[:3]}...); set image_size to resize them"
        )
    splits = {}
    for name in ("train", "test"):
        picked = [i for i, e in enumerate(entries) if e[0] == name]
        splits[name] = Split(
            np.stack([images[i] for i in picked]),
            np.array([index[entries[i][1]] for i in picked], dtype=np.int64),
        )
    return RawDataset(splits["train"], splits["test"], classes)


def _archive_entries(path: Path) -> list[tuple]:
    entries = []
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                match = MEMBER.search(member.name)
                if member.isfile() and match and member.name.lower().endswith(IMAGE_SUFFIXES):
                    handle = archive.extractfile(member)  # a regular file's member always has one
                    assert handle is not None
                    data = handle.read()
                    entries.append(
                        (match.group(1), match.group(2), member.name.rsplit("/", 1)[-1], data, f"{path}:{member.name}")
                    )
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataMissingError(
            f"{str(path)!r} is not a readable .tar/.tar.gz archive (empty, truncated or of "
            f"another kind: {type(err).__name__}: {err})"
        ) from None
    return entries


def _directory_entries(root: Path):
    for split in ("train", "test"):
        candidates = list(root.glob(f"**/{split}"))
        if not candidates:
            continue
        base = min(candidates, key=lambda p: len(p.parts))
        for file in base.glob("*/*"):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                yield split, file.parent.name, file


def _decode_chunk(args: tuple[list[tuple[str, bytes]], int | None]) -> list[np.ndarray]:
    blobs, size = args
    out = []
    for where, blob in blobs:
        try:
            with Image.open(io.BytesIO(blob)) as img:
                img = img.convert("RGB")
                if size is not None and img.size != (size, size):
                    img = img.resize((size, size), Image.Resampling.BICUBIC)
                out.append(np.asarray(img, dtype=np.uint8))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:  # PIL's errors
            raise DataMissingError(
                f"{where} is not an image PIL can decode ({type(err).__name__}: {err}); remove or replace it"
            ) from None
    return out


def _decode_all(blobs: list[tuple[str, bytes]], size: int | None, workers: int | None) -> list[np.ndarray]:
    """Decode in worker processes when there are many images (JPEG decoding holds the GIL)."""
    import os

    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(blobs) < 2000:
        return _decode_chunk((blobs, size))
    step = (len(blobs) + workers * 4 - 1) // (workers * 4)
    chunks = [(blobs[i : i + step], size) for i in range(0, len(blobs), step)]
    with ProcessPoolExecutor(workers) as pool:
        return [im for part in pool.map(_decode_chunk, chunks) for im in part]
