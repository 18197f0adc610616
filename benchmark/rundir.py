"""A run directory and its files (DESIGN.md, Contracts): config.json, status.json, metrics.jsonl,
result.json, checkpoint.pt. Every whole-file write is atomic: temporary file, then rename."""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATES = ("pending", "running", "done", "failed")
RESULT_KEYS = (
    "run_id", "method", "aug", "dataset", "prior", "seed", "epochs", "knn_acc", "knn200_acc", "linear_acc",
    "val_knn_acc", "val_linear_acc", "prior_nn_agreement", "train_seconds", "images_per_s",
)


def default_results_dir() -> Path:
    """Where results go: env GPSBENCH_RESULTS, else ./results of the working directory."""
    return Path(os.environ.get("GPSBENCH_RESULTS", "results"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_arrays(path: Path, *array: np.ndarray, **named: np.ndarray) -> None:
    """One array as .npy, or named arrays as .npz, written atomically."""
    buffer = io.BytesIO()
    if array:
        np.save(buffer, array[0])
    else:
        np.savez(buffer, **named)
    atomic_write_bytes(path, buffer.getvalue())


def json_text(value: Any) -> str:
    """How run-directory JSON files are formatted."""
    return json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, json_text(value).encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


class RunDir:
    """Paths and writers for one run's directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    status = property(lambda self: self.path / "status.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    result = property(lambda self: self.path / "result.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")

    def read_status(self) -> dict:
        return read_json(self.status) if self.status.is_file() else {"state": "pending", "attempt": 0}

    def write_status(self, state: str, **fields: Any) -> dict:
        if state not in STATES:
            raise ValueError(f"state {state!r} not in {STATES}")
        status = {**self.read_status(), **fields, "state": state, "updated": time.time()}
        atomic_write_json(self.status, status)
        return status

    def write_result(self, result: dict) -> None:
        missing = [k for k in RESULT_KEYS if k not in result]
        if missing:
            raise ValueError(f"result lacks keys {missing}")
        atomic_write_json(self.result, result)

    def save_checkpoint(self, state: dict) -> None:
        """torch.save into a temporary file in the same directory, then rename: never half-written."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".checkpoint.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, self.checkpoint)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self) -> dict | None:
        if not self.checkpoint.is_file():
            return None
        return torch.load(self.checkpoint, map_location="cpu", weights_only=False)

    def read_metrics(self) -> list[dict]:
        if not self.metrics.is_file():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, last_epoch: int) -> None:
        """Keep only lines up to `last_epoch` (the checkpoint's), so a resumed run never duplicates one."""
        kept = [m for m in self.read_metrics() if m.get("epoch", 0) <= last_epoch]
        atomic_write_bytes(self.metrics, "".join(json.dumps(m) + "\n" for m in kept).encode())


class ReadOnlyRunDir(RunDir):
    """The run directory as processes other than rank 0 see it: they read (the checkpoint to resume
    from) and never write, so one run has one writer however many processes train it."""

    def write_status(self, state: str, **fields: Any) -> dict:
        return self.read_status()

    def write_result(self, result: dict) -> None:
        pass

    def save_checkpoint(self, state: dict) -> None:
        pass

    def truncate_metrics(self, last_epoch: int) -> None:
        pass
