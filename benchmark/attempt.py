"""One attempt at a run, as far as its directory is concerned: every check that can refuse the attempt
comes before anything is written (another run's folder, a live writer, a finished run, a damaged or
unsafe checkpoint), then the claim, then the writes. A finished run is returned as it is: its
result.json is never rewritten, only damaged companions repaired (status, config, metrics)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from benchmark.claim import Claim, ClaimedRunDir, RunBusy, claim, holder
from benchmark.config import RunConfig
from benchmark.errors import ConfigError, DamagedFile, StorageError
from benchmark.liveness import this_process
from benchmark.ownership import check_owner
from benchmark.rundir import RunDir, atomic_write_json
from benchmark.runstate import RunState


def config_record(config: RunConfig) -> dict:
    """config.json: the resolved config (recipe defaults explicit), loadable with --config."""
    return {**config.to_dict(), **config.resolved()}


def _signature(path: Path) -> tuple | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class Attempt:
    """`resume`: continue from the checkpoint; `restart`: train again from scratch even when done;
    `restart_damaged`: a damaged checkpoint means starting over (sweeps) instead of an error that
    offers --restart (a person at the command line). `writer`: this process writes the run (rank 0)."""

    def __init__(
        self,
        run: RunDir,
        config: RunConfig,
        run_id: str,
        *,
        resume: bool,
        restart: bool = False,
        restart_damaged: bool = False,
        writer: bool = True,
    ):
        self.run, self.config, self.run_id = run, config, run_id
        self.resume, self.restart, self.restart_damaged, self.writer = resume, restart, restart_damaged, writer
        self.claim: Claim | None = None
        self.checkpoint: dict | None = None
        self.checkpoint_signature: tuple | None = None
        self.note: str | None = None

    # ---------------------------------------------------------------- before any work, read-only
    def finished(self) -> dict | None:
        """Refuse another run's folder (benchmark/ownership.py); leave a run a live writer trains; return
        a finished run's result (repairing its damaged companions under a claim)."""
        run = self.run
        if not run.path.is_dir():
            return None
        check_owner(run, self.run_id, self.restart)  # from every file that names a run, not status.json alone
        status = run.status_or_none()
        training = holder(run.path)  # every rank asks, so that all of them leave a run another job trains
        if training is not None and training.get("purpose") == "train":
            raise RunBusy(run.path, training)
        result = run.finished_result(self.run_id)
        if result is None or self.restart:
            return None
        if self.writer and not self.resume:
            print(
                f"run {self.run_id} in {run.path} is already done: its result is kept (--restart trains it again)",
                file=sys.stderr,
            )
        if status is not None and status.get("state") == RunState.DONE and run.damage(status) is None:
            return result
        if not self.writer:
            return result
        with claim(run.path) as held:
            return self._repair_finished(ClaimedRunDir(run.path, held), result)

    def read_checkpoint(self) -> dict | None:
        """The checkpoint to resume from, checked: readable (weights only), of this run."""
        if not self.resume or self.restart:
            return None
        self.checkpoint_signature = _signature(self.run.checkpoint)
        try:
            state = self.run.load_checkpoint()
        except DamagedFile as err:
            if not self.restart_damaged:
                raise DamagedFile(err.path, f"{err.reason}; --restart trains the run again from scratch") from None
            print(f"gpsbench: warning: {err}: the run starts again from scratch", file=sys.stderr)
            self.note = f"restarted from scratch: {err.path.name} was damaged ({err.reason})"
            return None
        if state is not None and state["run_id"] != self.run_id:
            raise ConfigError(
                f"{self.run.checkpoint} belongs to run {state['run_id']}, not {self.run_id}: the "
                f"config changed; use a new --out"
            )
        self.checkpoint = state
        return state

    # ---------------------------------------------------------------- the claim and the writes
    def take(self) -> dict | None:
        """Claim the run (RunBusy if a live writer holds it). Returns a result when the run finished
        while this process was loading, else None: go on and train."""
        if not self.writer:
            return None
        self.claim = claim(self.run.path)
        self.run = ClaimedRunDir(self.run.path, self.claim)
        try:
            result = None if self.restart else self.run.finished_result(self.run_id)
            if result is not None:
                result = self._repair_finished(self.run, result)
                self.release()
                return result
            if self.resume and _signature(self.run.checkpoint) != self.checkpoint_signature:
                self.read_checkpoint()  # another writer saved a newer one before this claim
            return None
        except BaseException:
            self.release()
            raise

    def begin(self, start_epoch: int) -> None:
        """The attempt's first writes: no stale result, the resolved config, status `running`, and
        metrics.jsonl kept to the checkpoint's epoch (lines lost to damage listed as `metrics_lost`)."""
        if not self.writer:
            return
        run = self.run
        removed = run.clear_leftovers()  # a killed write's temporary files, an empty folder in a file's place
        if removed:
            print(f"run {self.run_id}: removed {', '.join(removed)} left by an earlier attempt", file=sys.stderr)
        status = run.status_or_none()
        if status is None and run.status.is_file():
            self.note = self.note or "status.json was damaged: attempts counted from here"
        run.result.unlink(missing_ok=True)
        atomic_write_json(run.config, config_record(self.config))
        lost = run.truncate_metrics(start_epoch) if start_epoch else []
        if not start_epoch:
            run.metrics.unlink(missing_ok=True)
        run.write_status(
            RunState.RUNNING,
            run_id=self.run_id,
            attempt=int((status or {}).get("attempt", 0)) + 1,
            error=None,
            traceback=None,
            note=self.note,
            metrics_lost=lost,
            started=time.time(),
            **this_process(),
        )
        print(f"run {self.run_id} -> {run.path}", file=sys.stderr, flush=True)

    def end(self, state: RunState, **fields) -> None:
        """Record how the attempt ended, if the run is still this process's and the disk lets it."""
        if self.claim is None or not self.claim.held():
            return
        try:
            self.run.write_status(state, **fields)
        except StorageError:
            pass  # status.json stays `running` with this process gone: readers see the run as stale

    def release(self) -> None:
        if self.claim is not None:
            self.claim.release()

    def _repair_finished(self, run: RunDir, result: dict) -> dict:
        """A finished run whose status, config or metrics are damaged: rewrite what can be rewritten,
        keep result.json as it is, and list the epochs whose metrics were lost."""
        status = run.status_or_none() or {}
        damage = run.damage(status)
        if damage is None and status.get("state") == RunState.DONE:
            return result
        run.clear_leftovers()
        atomic_write_json(run.config, config_record(self.config))
        lost = run.truncate_metrics(result["epochs"])
        why = f"repaired {damage.path.name}: {damage.reason}" if damage else "repaired status.json"
        run.write_status(
            RunState.DONE,
            run_id=self.run_id,
            attempt=int(status.get("attempt", 1)),
            error=None,
            note=why,
            metrics_lost=lost,
            host=socket.gethostname(),
            repaired_by=os.getpid(),
        )
        return result
