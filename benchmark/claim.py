"""One writer per run directory, on one machine and on a cluster's shared file system.

A writer holds a run by a claim, `claim.<n>.json` in the run directory, naming its host, pid (with the
pid's start time), job id and purpose; the current claim is the one with the highest n. Claim n+1 is
made by hard-linking a fully written temporary file to its name: link() is atomic and fails when the
name exists, on local disks and over NFS and Lustre alike (where fcntl and flock locks are not to be
trusted), so of two writers racing for n+1 exactly one gets it. A claim can be taken only when the
current one is released or its writer is dead (its process is gone, or its SLURM job); a writer this
machine cannot check (another host, no job id) keeps the run. A stale claim is taken over by making the
next one, so nothing another writer may be reading is deleted, only claims below the current one.

Claims for training are held for a whole attempt; the sweep holds one for milliseconds to record a
submission (`purpose: mark`), and a starting job waits for such a claim instead of giving up.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.errors import StorageError, TrainingError
from benchmark.fileio import atomic_write_json, file_mode, storage_error
from benchmark.liveness import JobProbe, this_process
from benchmark.rundir import RunDir
from benchmark.runstate import RunState

CLAIM_NAME = re.compile(r"^claim\.(\d+)\.json$")
MARK_WAIT_S = 30.0  # how long a starting job waits for the sweep to finish recording its submission
MARK_STALE_S = 60.0  # a `mark` claim lasts milliseconds: one older than this was left by a crash


class RunBusy(Exception):
    """The run is held by a live writer (or one this machine cannot check): this process leaves it."""

    def __init__(self, run_dir: Path, holder: dict):
        self.run_dir, self.holder = Path(run_dir), holder
        job = f", job {holder['job_id']}" if holder.get("job_id") else ""
        super().__init__(
            f"run {self.run_dir.name} is held by pid {holder.get('pid')} on {holder.get('host')}{job} "
            f"({self.run_dir / 'claim.*.json'}); if that process is gone for good, delete the claim"
        )


def _claims(run_dir: Path) -> list[tuple[int, Path]]:
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), run_dir / name) for name in names if (m := CLAIM_NAME.match(name))]
    return sorted(found)


def _current(run_dir: Path) -> tuple[int, dict | None]:
    """The highest claim number (0: none) and its record (None when unreadable: a damaged claim
    holds nothing)."""
    while True:
        claims = _claims(run_dir)
        if not claims:
            return 0, None
        number, path = claims[-1]
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            continue  # replaced or removed while listing: look again
        except (ValueError, OSError):
            return number, None
        return number, record if isinstance(record, dict) else None


def _holds(record: dict | None, probe: JobProbe) -> bool:
    if record is None or record.get("released"):
        return False
    if record.get("purpose") == "mark" and time.time() - float(record.get("acquired", 0)) > MARK_STALE_S:
        return False
    return probe.writer_alive(record) is not False


def holder(run_dir: Path, probe: JobProbe | None = None) -> dict | None:
    """The record of the writer holding the run (alive, or on a machine this one cannot check)."""
    _, record = _current(Path(run_dir))
    return record if _holds(record, probe or JobProbe()) else None


def _link(run_dir: Path, number: int, record: dict) -> bool:
    """Create claim `number` with `record` in one atomic step; False when another writer made it first."""
    target = run_dir / f"claim.{number}.json"
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".claim.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), file_mode())
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError as err:
            if os.stat(tmp).st_nlink == 2:  # NFS: the link was made though its reply was lost
                return True
            raise storage_error(err, target) from None
        return True
    except OSError as err:
        raise storage_error(err, target) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass
class Claim:
    run_dir: Path
    number: int
    record: dict

    @property
    def path(self) -> Path:
        return self.run_dir / f"claim.{self.number}.json"

    def held(self) -> bool:
        """Still this writer's: no later claim, and not released."""
        number, record = _current(self.run_dir)
        return (
            number == self.number
            and record is not None
            and record.get("token") == self.record["token"]
            and not record.get("released")
        )

    def release(self) -> None:
        if not self.held():
            return
        try:
            atomic_write_json(self.path, {**self.record, "released": time.time()})
        except StorageError:
            pass  # a full disk: the claim dies with this process instead

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def claim(run_dir: Path, purpose: str = "train", probe: JobProbe | None = None) -> Claim:
    """Take the run for this process, or raise RunBusy naming who holds it."""
    run_dir = Path(run_dir)
    probe = probe or JobProbe()
    record = {**this_process(), "purpose": purpose, "token": uuid.uuid4().hex, "acquired": time.time()}
    waited_until = time.monotonic() + MARK_WAIT_S
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, run_dir) from None
    while True:
        number, current = _current(run_dir)
        if current is not None and _holds(current, probe):
            if current.get("purpose") == "mark" and time.monotonic() < waited_until:
                time.sleep(0.05)
                continue
            raise RunBusy(run_dir, current)
        if _link(run_dir, number + 1, record):
            for older, path in _claims(run_dir):
                if older <= number:
                    path.unlink(missing_ok=True)
            return Claim(run_dir, number + 1, record)


class ClaimedRunDir(RunDir):
    """The run directory as its claim holder writes it: every write first checks that the claim is
    still this writer's, so a writer that lost its run (a claim deleted by hand, taken over by a
    machine that judged it dead) stops instead of writing beside the new one."""

    def __init__(self, path: str | Path, held: Claim):
        super().__init__(path)
        self.claim = held

    def _check(self) -> None:
        if not self.claim.held():
            raise TrainingError(
                f"run {self.path.name}: its claim {self.claim.path.name} is no longer this "
                f"process's (another writer took the run over): stopping without writing"
            )

    def write_status(self, state: RunState, **fields: Any) -> dict:
        self._check()
        return super().write_status(state, **fields)

    def write_result(self, result: dict) -> None:
        self._check()
        super().write_result(result)

    def save_checkpoint(self, state: dict) -> None:
        self._check()
        super().save_checkpoint(state)

    def append_metrics(self, record: dict) -> None:
        self._check()
        super().append_metrics(record)

    def truncate_metrics(self, last_epoch: int) -> list[int]:
        self._check()
        return super().truncate_metrics(last_epoch)


def update_status(run_dir: Path, state: RunState, keep_done: bool = True, **fields: Any) -> bool:
    """Write a run's status.json from outside its training (a sweep recording a submission, a job
    recording why it could not start), under a brief claim: never over a live writer, and never over
    a finished run when `keep_done`. Returns whether it wrote."""
    run = RunDir(run_dir)
    try:
        with claim(run_dir, purpose="mark"):
            status = run.status_or_none() or {}
            if keep_done and run.finished_result(status.get("run_id") or run.path.name) is not None:
                return False
            run.write_status(state, **fields)
            return True
    except RunBusy:
        return False
