"""One sweep run as a submitit job: Checkpointable, so a preempted or timed-out job checkpoints at
the next step boundary and requeues, and the next attempt resumes from that checkpoint."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Callable

import submitit

from benchmark.config import RunConfig
from benchmark.errors import TrainingError
from benchmark.rundir import RunDir


def _deferred_preemption() -> tuple[Callable[[], bool] | None, Callable[[], None] | None]:
    """Under submitit, replace its preemption handler by one that only raises a flag: the training loop
    polls the flag after each step, saves a consistent checkpoint, then hands over to submitit's
    handler (checkpoint() -> requeue -> exit). A signal caught mid-step would save a torn state."""
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return None, None
    sig = submitit.JobEnvironment._usr_sig()
    original = signal.getsignal(sig)
    if not callable(original):
        return None, None
    requested = threading.Event()
    signal.signal(sig, lambda signum, frame: requested.set())
    return requested.is_set, lambda: original(sig, None)


class RunJob(submitit.helpers.Checkpointable):
    def __init__(self, config: RunConfig, run_dir: Path, results_root: Path, tags: list[str],
                 depends_on: str | None = None, max_attempts: int = 3, threads: int | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        self.results_root = Path(results_root)
        self.tags = tags
        self.depends_on = depends_on
        self.max_attempts = max_attempts
        self.threads = threads

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def _check_source(self) -> None:
        """A `run:` prior's source must be done; its job was scheduled first (or SLURM afterany)."""
        source = RunDir(self.run_dir.parent / self.depends_on)
        state = source.read_status().get("state", "new")
        if state != "done" or not source.checkpoint.is_file():
            message = f"prior run {self.depends_on} is {state}, not done: this run needs its checkpoint"
            if int(os.environ.get("RANK", 0)) == 0:
                RunDir(self.run_dir).write_status("failed", error=message)
            raise TrainingError(message)

    def __call__(self) -> dict:
        from benchmark.train import RunInterrupted, train_run

        if "SUBMITIT_EXECUTOR" in os.environ and submitit.JobEnvironment().num_tasks > 1:
            # one process per GPU: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT for torch.distributed
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if self.depends_on:
            self._check_source()
        if self.threads:
            import faiss
            import torch

            torch.set_num_threads(self.threads)
            faiss.omp_set_num_threads(self.threads)
        interrupt, hand_over = _deferred_preemption()
        try:
            return train_run(self.config, self.run_dir, resume=True, results_dir=self.results_root,
                             interrupt=interrupt, wandb_tags=self.tags)
        except RunInterrupted:
            hand_over()  # submitit: self.checkpoint(), requeue, exit (rank 0; the others just stop)
            raise
        finally:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()

    def checkpoint(self, *args, **kwargs):
        """Requeue this job (the run resumes from its checkpoint), at most `max_attempts` attempts."""
        run = RunDir(self.run_dir)
        attempt = int(run.read_status().get("attempt", 0))
        if attempt >= self.max_attempts:
            run.write_status("failed", error=f"interrupted on attempt {attempt}, the last one allowed "
                                             f"(resources.max_attempts = {self.max_attempts})")
            return None
        run.write_status("pending", note=f"requeued after attempt {attempt} (preemption or time limit)")
        return super().checkpoint(*args, **kwargs)
