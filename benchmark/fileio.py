"""Writing files so that a crash, a kill or a full disk never leaves a half-written one.

Whole files go to a temporary file in the same folder, then are renamed over the old one; an append
(metrics.jsonl) adds a whole line or nothing. Files get the mode the umask gives, so a results folder
a group shares stays shared (a temporary file alone would be 0600). A write that fails for lack of
space, a file-size limit, a quota or permissions raises StorageError naming the path and what the
write needed, instead of the library's own error (torch's zip writer says only "file write failed").
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import StorageError


@functools.cache
def file_mode() -> int:
    """0o666 less the process's umask (which can only be read by setting it, so once)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return None


def storage_error(err: OSError, path: Path, need: int | None = None) -> StorageError:
    """One line for a failed write: which file, why, and what it needed."""
    needs = f"it needs {size_text(need)}" if need is not None else "it needs more room"
    if err.errno == errno.ENOSPC:
        free = _free_bytes(path)
        have = f", {size_text(free)} free" if free is not None else ""
        return StorageError(
            f"no space left on the device writing {path}: {needs}{have}; free space, then run the same command again"
        )
    if err.errno == errno.EDQUOT:
        return StorageError(f"disk quota exceeded writing {path}: {needs}; free space or raise the quota")
    if err.errno == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        shown = "unlimited" if limit == resource.RLIM_INFINITY else size_text(limit)
        return StorageError(f"file size limit reached writing {path}: {needs}, the limit (ulimit -f) is {shown}")
    return StorageError(f"cannot write {path}: {err.strerror or err}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), file_mode())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        if tmp is not None:  # first give the space back, then say how much there is
            Path(tmp).unlink(missing_ok=True)
            tmp = None
        raise storage_error(err, path, len(data)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_write_arrays(path: Path, *array: np.ndarray, **named: np.ndarray) -> None:
    """One array as .npy, or named arrays as .npz, written atomically."""
    buffer = io.BytesIO()
    if array:
        np.save(buffer, array[0])
    else:
        np.savez(buffer, **named)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    atomic_write_bytes(path, buffer.getvalue())


def json_text(value: Any) -> str:
    """How run-directory JSON files are formatted."""
    return json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json_text(value).encode())


def append_line(path: Path, line: str) -> None:
    """Append one line, all of it or none: when the disk fills mid-line, the file is cut back to where
    it was, so no torn line is left for readers (a kill mid-write can still leave one; readers drop it)."""
    data = (line + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as err:
        raise storage_error(err, Path(path), len(data)) from None
    try:
        start = os.fstat(fd).st_size
        rest = memoryview(data)
        while rest:
            rest = rest[os.write(fd, rest) :]
    except OSError as err:
        os.ftruncate(fd, start)
        raise storage_error(err, Path(path), len(data)) from None
    finally:
        os.close(fd)
