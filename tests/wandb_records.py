"""Read the records of a W&B offline run file (`run-<id>.wandb`), to check what a run sent to W&B.

The file is W&B's header (":W&B", magic, version: 7 bytes) followed by a LevelDB-style log: 32 KiB
blocks of chunks (crc32: 4 bytes, length: 2 bytes little-endian, type: 1 byte; FULL=1, FIRST=2,
MIDDLE=3, LAST=4), each record a serialized `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    records, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # block trailer padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def run_record(path: Path):
    """The run's `run` record: id, group, job_type, tags, project."""
    return next(r.run for r in read_records(path) if r.WhichOneof("record_type") == "run")


def history_steps(path: Path) -> list[int]:
    return [r.history.step.num for r in read_records(path) if r.WhichOneof("record_type") == "history"]


def run_config(path: Path) -> dict:
    """The W&B config the run sent (its run record's config items, values decoded from JSON)."""
    import json

    return {item.key: json.loads(item.value_json) for item in run_record(path).config.update}


def artifacts(path: Path) -> list:
    """The run's `artifact` records: name, type, manifest (the files, with their staged local paths)."""
    return [r.artifact for r in read_records(path) if r.WhichOneof("record_type") == "artifact"]


def offline_runs(folder: Path) -> list[Path]:
    """The `run-<id>.wandb` files of every offline run W&B wrote under `folder/wandb/`."""
    return sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb"))
