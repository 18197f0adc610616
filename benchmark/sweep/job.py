"""One sweep run as a submitit job: Checkpointable, so a preempted or timed-out job checkpoints at
the next step boundary and requeues, and the next attempt resumes from that checkpoint.

A job re-reads its run when it starts: a run another invocation finished is left as it is, a run a
live writer holds is left to it (the job ends quietly), and the run is trained under its claim.
Under the local executor, SIGINT (a terminal's Ctrl-C) and SIGTERM (the sweep stopping its runs, a
plain kill) ask the run to stop at its next step: it checkpoints there and is left `pending`."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

import submitit

from benchmark.claim import RunBusy, update_status
from benchmark.config import RunConfig
from benchmark.errors import ConfigError, TrainingError
from benchmark.ownership import ForeignRun
from benchmark.rundir import RunDir
from benchmark.runstate import RunState
from benchmark.scheduler import in_submitit_job, submitit_preemption
from benchmark.tracking import Labels


def _deferred_preemption() -> tuple[Callable[[], bool] | None, Callable[[], None] | None]:
    """Under submitit, replace its preemption handler by one that only raises a flag: the training loop
    polls the flag after each step, saves a consistent checkpoint, then hands over to submitit's
    handler (checkpoint() -> requeue -> exit). A signal caught mid-step would save a torn state."""
    preemption = submitit_preemption()
    if preemption is None:
        return None, None
    requested = threading.Event()
    signal.signal(preemption.signum, lambda signum, frame: requested.set())
    return requested.is_set, preemption.requeue


def _stop_on_signals() -> Callable[[], bool] | None:
    """Local jobs: SIGINT and SIGTERM raise a flag the training loop polls (the sweep's processes
    ignore a terminal's Ctrl-C, so a stop always reaches the run through here)."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "local":
        return None
    requested = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: requested.set())
    return requested.is_set


def _either(*flags: Callable[[], bool] | None) -> Callable[[], bool] | None:
    polled = [flag for flag in flags if flag is not None]
    return (lambda: any(flag() for flag in polled)) if polled else None


def use_threads(threads: int | None) -> None:
    """Keep torch and faiss (OpenMP) to the CPUs a job was given (a slot's share, SLURM's cpus), so that
    jobs sharing a machine do not oversubscribe it; None leaves the libraries' defaults."""
    if threads:
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)


class RunJob(submitit.helpers.Checkpointable):
    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        results_root: Path,
        labels: Labels,
        depends_on: str | None = None,
        max_attempts: int = 3,
        threads: int | None = None,
        devices: tuple[str, ...] | None = None,
    ):
        self.config = config
        self.run_dir = Path(run_dir)
        self.results_root = Path(results_root)
        self.labels = labels  # W&B: the sweep and the cell
        self.depends_on = depends_on
        self.max_attempts = max_attempts
        self.threads = threads
        self.devices = devices  # the slot's GPUs (local executor); None leaves CUDA_VISIBLE_DEVICES as it is

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def _check_source(self) -> None:
        """A `run:` prior's source must be done; its job was scheduled first (or SLURM afterany)."""
        assert self.depends_on is not None  # called only for a job that depends on a run
        source = RunDir(self.run_dir.parent / self.depends_on)
        state = (source.status_or_none() or {"state": "damaged"}).get("state", "new")
        if state != RunState.DONE or not source.checkpoint.is_file():
            raise ConfigError(f"prior run {self.depends_on} is {state}, not done: this run needs its checkpoint")

    def __call__(self) -> dict | None:
        stop = _stop_on_signals()  # first: a stop that arrives while torch loads is not lost
        if self.devices is not None:  # before anything initialises CUDA, which reads it once
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(self.devices)
        from benchmark.train import RunInterrupted, train_run

        if in_submitit_job() and submitit.JobEnvironment().num_tasks > 1:
            # one process per GPU: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT for torch.distributed
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        use_threads(self.threads)
        preempted, hand_over = _deferred_preemption()
        try:
            if self.depends_on:
                self._check_source()
            return train_run(
                self.config,
                self.run_dir,
                resume=True,
                restart_damaged=True,
                # a cell's `run:` source is a cell of this sweep: looked up in its folder only
                results_dir=self.run_dir.parent if self.depends_on else self.results_root,
                interrupt=_either(preempted, stop),
                wandb_labels=self.labels,
            )
        except RunBusy as busy:
            print(f"gpsbench: {busy}: this job leaves it", file=sys.stderr)
            return None
        except RunInterrupted:
            if preempted is not None and preempted():
                assert hand_over is not None  # _deferred_preemption sets both or neither
                hand_over()  # submitit: self.checkpoint(), requeue, exit (rank 0; the others just stop)
                raise
            return None  # stopped by a signal: the run is `pending`, the next sweep resumes it
        except ConfigError as err:  # found before the run could start: the run fails with the reason
            if int(os.environ.get("RANK", 0)) == 0 and not isinstance(err, ForeignRun):  # never into another's folder
                update_status(self.run_dir, RunState.FAILED, run_id=self.run_id, error=f"{type(err).__name__}: {err}")
            raise TrainingError(str(err)) from None
        finally:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()

    def checkpoint(self, *args, **kwargs):
        """Requeue this job (the run resumes from its checkpoint), at most `max_attempts` attempts."""
        attempt = int((RunDir(self.run_dir).status_or_none() or {}).get("attempt", 0))
        if attempt >= self.max_attempts:
            update_status(
                self.run_dir,
                RunState.FAILED,
                error=f"interrupted on attempt {attempt}, the last one allowed "
                f"(resources.max_attempts = {self.max_attempts})",
            )
            return None
        update_status(
            self.run_dir, RunState.PENDING, note=f"requeued after attempt {attempt} (preemption or time limit)"
        )
        return super().checkpoint(*args, **kwargs)
