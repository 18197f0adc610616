"""A run directory and its files (docs/design.md, Contracts): config.json, status.json, metrics.jsonl,
result.json, checkpoint.pt, and the writer's claim (claim.py). Whole-file writes are atomic and appends
whole lines (fileio.py). Readers check what they read: a damaged file is reported by name and reason
(`damage`), never a crash, and a torn last line of metrics.jsonl (a write cut by a kill) is dropped."""

from __future__ import annotations

import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import DamagedFile
from benchmark.fileio import (  # noqa: F401  (re-exported: where run files have always been written from)
    append_line,
    atomic_write_arrays,
    atomic_write_bytes,
    atomic_write_json,
    json_text,
)
from benchmark.runstate import RECORDED, RunState

RESULT_KEYS = (
    "run_id",
    "method",
    "aug",
    "dataset",
    "prior",
    "seed",
    "epochs",
    "knn_acc",
    "knn200_acc",
    "linear_acc",
    "val_knn_acc",
    "val_linear_acc",
    "prior_nn_agreement",
    "train_seconds",
    "images_per_s",
)


RUN_ID = re.compile(r"^[0-9a-f]{12}$")


def is_run_id(name: str) -> bool:
    """Whether a name is a run_id (12 hex digits), as the folders of sweeps and of `runs/` are named."""
    return bool(RUN_ID.match(name))


def default_results_dir() -> Path:
    """Where results go: env GPSBENCH_RESULTS, else ./results of the working directory."""
    return Path(os.environ.get("GPSBENCH_RESULTS", "results"))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_object(path: Path) -> dict:
    """A JSON object from `path`, or DamagedFile saying what is wrong with it (a directory where the
    file belongs included); FileNotFoundError when there is none."""
    return parse_object(read_bytes(path), path)


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; DamagedFile when something else stands where it belongs or it cannot be read
    (a directory, no permission), FileNotFoundError when nothing is there."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise DamagedFile(path, "a directory, not a file") from None
    except OSError as err:
        raise DamagedFile(path, f"cannot be read ({err.strerror or err})") from None


# contract keys of result.json that hold numbers (null where a run has none: no prior, no timing)
NUMERIC_RESULT_KEYS = tuple(key for key in RESULT_KEYS if key not in ("run_id", "method", "aug", "dataset", "prior"))


def result_problem(result: dict) -> str | None:
    """What makes a result.json with every key unusable: a number that is not one."""
    for key in NUMERIC_RESULT_KEYS:
        value = result[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{key} is {value!r:.60}, not a number"
    if not isinstance(result["run_id"], str):
        return f"run_id is {result['run_id']!r:.60}, not a run_id"
    return None


def parse_object(data: bytes, path: str | Path) -> dict:
    """read_object on bytes already read (`path` names them in the error)."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise DamagedFile(path, "not text (binary garbage)") from None
    if not text.strip():
        raise DamagedFile(path, "empty")
    try:
        value = json.loads(text)
    except ValueError as err:
        raise DamagedFile(path, f"not valid JSON, truncated or damaged ({err})") from None
    if not isinstance(value, dict):
        raise DamagedFile(path, f"holds a JSON {type(value).__name__}, not an object")
    return value


@dataclass
class MetricsLog:
    """metrics.jsonl as read: the good records, whether the last line was torn, and bad lines inside."""

    records: list[dict] = field(default_factory=list)
    torn_tail: bool = False
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unreadable lines before the last

    @property
    def epochs(self) -> list[int]:
        return [record["epoch"] for record in self.records]


def parse_metrics(data: bytes) -> MetricsLog:
    log = MetricsLog()
    lines = data.split(b"\n")
    complete = data.endswith(b"\n") or not data
    for number, raw in enumerate(lines[:-1] if complete else lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
                raise ValueError("not an epoch record")
            log.records.append(record)
        except (ValueError, UnicodeDecodeError):
            last = number == len(lines) - (1 if complete else 0)
            if last and not complete:
                log.torn_tail = True
            else:
                log.bad_lines.append(number)
    return log


class RunDir:
    """Paths, readers and writers for one run's directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    status = property(lambda self: self.path / "status.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    result = property(lambda self: self.path / "result.json")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")

    def read_status(self) -> dict:
        """status.json, or `pending` at attempt 0 when there is none; DamagedFile when unreadable."""
        if not self.status.exists():
            return {"state": RunState.PENDING, "attempt": 0}
        status = read_object(self.status)
        if status.get("state") not in RECORDED:
            raise DamagedFile(self.status, f"state {status.get('state')!r} is not one of {', '.join(RECORDED)}")
        return status

    def status_or_none(self) -> dict | None:
        try:
            return self.read_status()
        except DamagedFile:
            return None

    def read_result(self, run_id: str | None = None) -> dict:
        """result.json with every contract key (and this run's id); DamagedFile otherwise."""
        result = read_object(self.result)
        missing = [key for key in RESULT_KEYS if key not in result]
        if missing:
            raise DamagedFile(self.result, f"lacks keys {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        problem = result_problem(result)
        if problem:
            raise DamagedFile(self.result, problem)
        if run_id is not None and result["run_id"] != run_id:
            raise DamagedFile(self.result, f"is the result of run {result['run_id']}, not {run_id}")
        return result

    def finished_result(self, run_id: str) -> dict | None:
        """The run's result when result.json is there and sound, else None."""
        if not self.result.exists():
            return None
        try:
            return self.read_result(run_id)
        except DamagedFile:
            return None

    def write_status(self, state: RunState, **fields: Any) -> dict:
        if state not in RECORDED:
            raise ValueError(f"state {state!r} not in {', '.join(RECORDED)}")
        status = {**(self.status_or_none() or {}), **fields, "state": state, "updated": time.time()}
        atomic_write_json(self.status, status)
        return status

    def write_result(self, result: dict) -> None:
        missing = [k for k in RESULT_KEYS if k not in result]
        if missing:
            raise ValueError(f"result lacks keys {missing}")
        atomic_write_json(self.result, result)

    def clear_leftovers(self) -> list[str]:
        """For the run's writer, under its claim: the temporary files of writes a kill cut short
        (`.<file>.<random>.tmp`, fileio.atomic_write_bytes) and empty folders where a run file belongs.
        A folder that holds something stays (the write there fails and says so). Returns what went."""
        removed = []
        for path in (self.config, self.status, self.metrics, self.result, self.checkpoint):
            for leftover in sorted(self.path.glob(f".{path.name}.*.tmp")):
                leftover.unlink(missing_ok=True)
                removed.append(leftover.name)
            if path.is_dir() and not path.is_symlink():
                try:
                    path.rmdir()
                except OSError:
                    continue
                removed.append(f"{path.name}/ (an empty folder)")
        return removed

    def save_checkpoint(self, state: dict) -> None:
        """Serialised in memory, then written atomically: never half-written, and a full disk is
        reported with the path and the size it needed (torch's own writer says neither)."""
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint, buffer.getvalue())

    def load_checkpoint(self) -> dict | None:
        """The checkpoint (tensors, numbers and containers only: weights_only); DamagedFile when it
        cannot be read, UnsafeFile when it would run code."""
        from benchmark.safeload import load_torch

        if not self.checkpoint.is_file():
            return None
        state = load_torch(self.checkpoint, "checkpoint")
        if not isinstance(state, dict) or not {"run_id", "epoch", "method"} <= set(state):
            raise DamagedFile(self.checkpoint, "not a checkpoint of this suite (no run_id, epoch, method)")
        return state

    def metrics_log(self) -> MetricsLog:
        return parse_metrics(self.metrics.read_bytes()) if self.metrics.is_file() else MetricsLog()

    def append_metrics(self, record: dict) -> None:
        append_line(self.metrics, json.dumps(record))

    def read_metrics(self) -> list[dict]:
        """The readable epoch records (a torn last line and damaged lines are left out)."""
        return self.metrics_log().records

    def truncate_metrics(self, last_epoch: int) -> list[int]:
        """Keep the readable lines up to `last_epoch` (the checkpoint's), one per epoch (the last
        written), so a resumed run never duplicates one; returns the epochs up to it whose lines were
        lost to damage."""
        kept = {m["epoch"]: m for m in self.read_metrics() if m["epoch"] <= last_epoch}
        atomic_write_bytes(self.metrics, "".join(json.dumps(kept[e]) + "\n" for e in sorted(kept)).encode())
        return [epoch for epoch in range(1, last_epoch + 1) if epoch not in kept]

    def damage(self, status: dict | None = None) -> DamagedFile | None:
        """The first damaged file of the run, or None: status.json, config.json, result.json (when it
        is there or the run says done) and metrics.jsonl (a bad line before the last, an epoch twice,
        an epoch missing that status.json does not list as lost; a torn last line only once done); a
        directory where one of them belongs is damage too."""
        try:
            status = self.read_status() if status is None else status
            for path in (self.metrics, self.checkpoint):  # (the JSON files say so as they are read)
                if path.exists() and not path.is_file():
                    raise DamagedFile(path, "a directory, not a file")
            if self.config.exists():
                read_object(self.config)
            done = status.get("state") == RunState.DONE
            result = self.read_result(status.get("run_id")) if self.result.exists() or done else None
        except DamagedFile as err:
            return err
        except FileNotFoundError:
            return DamagedFile(self.result, "missing although status.json says done")
        return self._metrics_damage(status, result)

    def _metrics_damage(self, status: dict, result: dict | None) -> DamagedFile | None:
        lost = status.get("metrics_lost") or []
        if result is not None:
            return self._finished_metrics_damage(result["epochs"], lost)
        log = self.metrics_log()
        if log.bad_lines:
            return DamagedFile(self.metrics, f"line {log.bad_lines[0]} is not an epoch record")
        epochs = log.epochs
        twice = sorted({e for e in epochs if epochs.count(e) > 1})
        if twice:
            return DamagedFile(self.metrics, f"epochs {twice[:5]} appear twice")
        missing = [e for e in range(1, max(epochs, default=0) + 1) if e not in epochs and e not in lost]
        if missing:
            return DamagedFile(self.metrics, f"epochs {missing[:5]} missing before epoch {max(epochs)}")
        return None

    def _finished_metrics_damage(self, epochs: int, lost: list[int]) -> DamagedFile | None:
        """A finished run's log must end, whole, with its last epoch: read from the end only, so that
        reading the states of 10,000 finished runs stays cheap."""
        last = max((e for e in range(1, epochs + 1) if e not in lost), default=0)
        if not last:
            return None
        try:
            with open(self.metrics, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - 4096))
                tail = handle.read()
        except FileNotFoundError:
            return DamagedFile(self.metrics, "missing although the run is done")
        if not tail.endswith(b"\n"):
            return DamagedFile(
                self.metrics,
                "empty although the run is done" if not tail else "its last line is cut off although the run is done",
            )
        records = parse_metrics(tail.rsplit(b"\n", 2)[-2] + b"\n").records
        if not records or records[0]["epoch"] != last:
            return DamagedFile(self.metrics, f"does not end with epoch {last} of the finished run")
        return None


class ReadOnlyRunDir(RunDir):
    """The run directory as processes other than rank 0 see it: they read (the checkpoint to resume
    from) and never write, so one run has one writer however many processes train it."""

    def clear_leftovers(self) -> list[str]:
        return []

    def write_status(self, state: RunState, **fields: Any) -> dict:
        return self.status_or_none() or {}

    def write_result(self, result: dict) -> None:
        pass

    def save_checkpoint(self, state: dict) -> None:
        pass

    def append_metrics(self, record: dict) -> None:
        pass

    def truncate_metrics(self, last_epoch: int) -> list[int]:
        return []
