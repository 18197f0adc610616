"""What identifies a data set given by path (`data_path`: an archive, an .npz, a folder of images): a
hash of its content. It enters the run_id of every run on that data and keys the decoded-image cache,
so two different folders never share a run or a cache (whatever their names, sizes and dates), and
replacing images inside a folder gives new runs instead of stale ones. Symbolic links are followed, as
the loader follows them: a `train/` that links to other images is hashed by those images (a link that
leads back into the tree is walked once). Hashed once per process and path (a sweep plans many cells
on one data set; the data is not expected to change while a command runs).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from benchmark.data.base import DataMissingError
from benchmark.data.imagefolder import IMAGE_SUFFIXES

BLOCK = 1 << 20


def _update_with_file(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)


def _walk_following_links(root: Path):
    """(folder, file names) under root, through linked folders too, each real folder once (a link to an
    ancestor would otherwise loop)."""
    seen: set[tuple[int, int]] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs.sort()  # the same folders first on every walk, so a folder reached twice is hashed at one place
        yield folder, names


@functools.lru_cache(maxsize=64)
def _fingerprint(path: str, signature: tuple) -> str:
    digest = hashlib.sha256()
    root = Path(path)
    if root.is_file():
        _update_with_file(digest, root)
    else:
        files = sorted(
            os.path.relpath(os.path.join(folder, name), root)
            for folder, names in _walk_following_links(root)
            for name in names
            if name.lower().endswith(IMAGE_SUFFIXES)
        )
        for relative in files:  # the images the loader reads, each by its place in the tree and its bytes
            digest.update(relative.encode() + b"\0")
            _update_with_file(digest, root / relative)
    return digest.hexdigest()[:16]


def content_fingerprint(path: str | Path, what: str = "data_path") -> str:
    """16 hex digits of SHA-256 over the bytes of a file, or over the relative paths and bytes of every
    image under a folder, linked folders and files followed. `what` names the path in errors."""
    path = Path(path)
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
    except OSError:
        raise DataMissingError(f"{what} {str(path)!r} does not exist") from None
    try:
        return _fingerprint(str(resolved), (stat.st_ino, stat.st_size, stat.st_mtime_ns))
    except OSError as err:
        raise DataMissingError(
            f"{what} {str(path)!r} cannot be read: {err.strerror or err} ({err.filename or path})"
        ) from None
