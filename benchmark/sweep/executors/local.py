"""The `local` executor: submitit LocalExecutor jobs on this machine, one per free slot (a group of the
GPUs this process was given, or a share of its cores), through the slot scheduler."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping, TextIO

from benchmark.errors import ConfigError
from benchmark.sweep.executors.base import EXECUTORS, ExecutorOptions, Launch, Progress, Workers, mark_submitted
from benchmark.sweep.executors.slots import SlotScheduler
from benchmark.sweep.job import RunJob
from benchmark.sweep.spec import Resources

# Where a parent learns which GPUs it was given, first match wins: CUDA_VISIBLE_DEVICES is what CUDA
# itself honours (under SLURM with cgroups it holds the renumbered indices); SLURM's own variables
# describe the allocation inside a job where CUDA_VISIBLE_DEVICES was not set.
DEVICE_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "GPU_DEVICE_ORDINAL")


@dataclass(frozen=True)
class Devices:
    """The GPUs this process may hand to its runs, each named as a child's CUDA_VISIBLE_DEVICES takes it
    (an index, a GPU-/MIG- UUID), and where that list came from (for messages)."""

    entries: tuple[str, ...]
    source: str


def allocated_devices(env: Mapping[str, str]) -> Devices | None:
    """The devices the environment allocates (None when no variable is set). CUDA stops reading the
    list at the first invalid entry, so a negative one (\"-1\" hides every GPU) ends it here too."""
    for name in DEVICE_VARIABLES:
        value = env.get(name)
        if value is None:
            continue
        entries: list[str] = []
        for entry in value.split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            entries.append(entry)
        return Devices(tuple(entries), name)
    return None


def visible_gpus(env: Mapping[str, str] = os.environ) -> Devices:
    """The GPUs of this process: its allocation when one is set, else every GPU torch sees."""
    import torch

    if not torch.cuda.is_available():
        return Devices((), "torch (no CUDA device)")
    allocated = allocated_devices(env)
    if allocated is not None:
        return allocated
    return Devices(tuple(str(i) for i in range(torch.cuda.device_count())), "torch.cuda.device_count()")


@dataclass(frozen=True)
class Slot:
    gpus: tuple[str, ...] = ()
    threads: int = 1

    def __str__(self) -> str:
        return f"GPU {','.join(self.gpus)}" if self.gpus else f"CPU, {self.threads} thread(s)"


def gpu_slots(devices: Devices, per_run: int, max_parallel: int | None, cores: int) -> list[Slot]:
    """Slot i holds the i-th group of `per_run` devices of the allocation, so that a job started under
    CUDA_VISIBLE_DEVICES=2,3 uses GPU 2 and GPU 3, never 0. More slots than devices: an error."""
    have = len(devices.entries)
    shown = f"{devices.source} makes {have} visible ({','.join(devices.entries)})"
    if per_run > have:
        raise ConfigError(f"the sweep asks for {per_run} GPU(s) per run and {shown}: set resources.gpus <= {have}")
    groups = [devices.entries[i : i + per_run] for i in range(0, have - per_run + 1, per_run)]
    if max_parallel is not None and max_parallel > len(groups):
        raise ConfigError(
            f"--max-parallel {max_parallel} with {per_run} GPU(s) per run needs {max_parallel * per_run} GPUs and "
            f"{shown}: valid --max-parallel 1..{len(groups)}"
        )
    count = max_parallel or len(groups)
    return [Slot(group, max(1, cores // count)) for group in groups[:count]]


@EXECUTORS.register("local")
class LocalExecutor:
    """submitit LocalExecutor jobs (own processes: a crash or Ctrl-C of one run spares the others),
    started one per free slot."""

    waits = True

    def __init__(self, options: ExecutorOptions, resources: Resources, devices: Devices | None = None):
        if options.max_parallel is not None and options.max_parallel < 1:
            raise ConfigError(f"--max-parallel must be >= 1, got {options.max_parallel}")
        self.options = options
        self.resources = resources
        cores = os.cpu_count() or 1
        if resources.gpus:
            devices = visible_gpus() if devices is None else devices
        if resources.gpus and devices is not None and devices.entries:
            self.slots = gpu_slots(devices, resources.gpus, options.max_parallel, cores)
        else:
            if resources.gpus:
                print(
                    f"gpsbench: warning: the sweep asks for {resources.gpus} GPU(s) per run and this machine "
                    "has none: runs use the CPU",
                    file=sys.stderr,
                )
            count = options.max_parallel or max(1, cores // resources.cpus)
            self.slots = [Slot((), max(1, cores // count)) for _ in range(count)]

    def run(self, launch: Launch, progress: Progress) -> None:
        import submitit

        folder = launch.sweep_dir / ".submitit"
        jobs: dict[str, object] = {}

        def start(job: RunJob, slot: Slot) -> Callable[[], bool]:
            tasks = self.resources.tasks
            job.threads = max(1, slot.threads // tasks)
            job.devices = slot.gpus  # the job sets CUDA_VISIBLE_DEVICES: submitit's visible_gpus takes ints only
            executor = submitit.LocalExecutor(folder=folder, max_num_timeout=self.resources.max_attempts)
            executor.update_parameters(
                timeout_min=self.resources.timeout_min,
                gpus_per_node=0,  # submitit then starts the controller with no GPU; the job names its own
                signal_delay_s=60,
                tasks_per_node=tasks,
            )
            mark_submitted(job.run_dir, "local", None, pid=os.getpid(), slot=str(slot))
            with _terminal_ctrl_c_ignored():
                handle = executor.submit(job)
            mark_submitted(
                job.run_dir, "local", handle.job_id, pid=int(handle.job_id), log=handle.paths.stderr, slot=str(slot)
            )
            jobs[job.run_id] = handle
            return lambda: handle.done()

        try:
            SlotScheduler(self.slots, start, poll_s=self.options.poll_s).run(launch, progress)
        except KeyboardInterrupt:
            _stop(list(jobs.values()), progress.stream)
            raise

    def start_workers(self, workers: Workers) -> list:
        import submitit

        threads = max(1, (os.cpu_count() or 1) // workers.count)  # the workers share this machine's cores
        jobs = []
        for index in range(workers.count):
            executor = submitit.LocalExecutor(folder=workers.folder)
            executor.update_parameters(timeout_min=workers.resources.timeout_min * workers.trials)
            jobs.append(executor.submit(workers.make(threads, "local", index)))
        return jobs


@contextlib.contextmanager
def _terminal_ctrl_c_ignored():
    """Start a job with SIGINT ignored, which its controller (and so its run) inherits: a terminal's
    Ctrl-C then reaches the run only through the handler the run installs (a stop at the next step),
    and never the controller, which would kill the run one second later, before it saved anything."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(handles: list, stream: TextIO) -> None:
    """Ask every live job to stop (SIGTERM to its controller, which passes it to the run: the run saves
    a checkpoint at its next step and is left `pending`) and wait until they have. Asked again each
    half second, so a run still starting up gets it too; Ctrl-C or a kill again leaves them to it."""
    alive = [handle for handle in handles if not handle.done()]
    if alive:
        print(
            f"stopping {len(alive)} run(s): each saves a checkpoint at its next step (again: leave them to it)",
            file=stream,
            flush=True,
        )
    while alive:
        for handle in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(handle.job_id), signal.SIGTERM)
        time.sleep(0.5)
        alive = [handle for handle in alive if not handle.done()]
