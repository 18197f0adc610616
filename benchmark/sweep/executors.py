"""Where runs execute. `debug`: in this process, one after another. `local`: our own slot scheduler
over submitit's LocalExecutor (which by itself starts every job at once): one run per visible GPU
group, or --max-parallel runs on the CPU. `slurm`: job arrays through submitit, chunked to the
cluster's MaxArraySize; it submits and returns. A `run:` prior's cell starts after its source.
Each executor also starts a tuning study's workers (`start_workers`), so `gpsbench tune` picks its
executor from the same registry as `gpsbench sweep`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, TextIO

from benchmark.claim import update_status
from benchmark.errors import ConfigError
from benchmark.registry import Registry
from benchmark.rundir import RunDir
from benchmark.runstate import LIVE, RunState
from benchmark.sweep.job import RunJob
from benchmark.sweep.profiles import chunks, cluster_max_array_size, load_profile
from benchmark.sweep.run_views import JobProbe, run_state
from benchmark.sweep.spec import Resources


@dataclass(frozen=True)
class ExecutorOptions:
    max_parallel: int | None = None
    profile: str | None = None
    poll_s: float = 2.0


@dataclass
class Launch:
    jobs: list[RunJob]  # to start, each after its `run:` source
    sweep_dir: Path
    resources: Resources
    watch: list[str]  # runs of this sweep already running elsewhere (an earlier invocation): wait for them


@dataclass
class Workers:
    """A tuning study's workers: `make(threads, executor, index)` is worker `index`, a callable that
    takes trials one after another until the study's `trials` are spent; `resources` are one trial's."""

    make: Callable[[int | None, str, int], Callable[[], Any]]
    count: int
    folder: Path
    resources: Resources
    trials: int


class Executor(Protocol):
    waits: bool

    def run(self, launch: Launch, progress: "Progress") -> None: ...

    def start_workers(self, workers: Workers) -> list:
        """Start the workers; return their submitit jobs ([] when they ran here, to the end)."""
        ...


EXECUTORS: Registry[Callable[[ExecutorOptions, Resources], Executor]] = Registry("executor")


class Progress:
    """One line per run that starts, waits for another invocation, or ends, with the sweep's counts."""

    def __init__(self, total: int, done: int, labels: dict[str, str], stream: TextIO):
        self.total, self.done, self.failed, self.stopped = total, done, 0, 0
        self.labels = labels
        self.stream = stream
        self.started_at = time.time()

    def _print(self, word: str, run_id: str, extra: str = "") -> None:
        elapsed = time.time() - self.started_at
        print(
            f"[{self.done + self.failed + self.stopped:>3}/{self.total} {elapsed:6.0f}s] {word:<7} {run_id}  "
            f"{self.labels.get(run_id, '')}{extra}",
            file=self.stream,
            flush=True,
        )

    def started(self, run_id: str, where: str = "") -> None:
        self._print("start", run_id, f"  ({where})" if where else "")

    def waits(self, run_id: str, status: dict) -> None:
        self._print(
            "waits",
            run_id,
            f"  (trained by pid {status.get('pid') or status.get('job_pid')} on "
            f"{status.get('host')}, another invocation)",
        )

    def finished(self, run_dir: Path) -> None:
        state = run_state(run_dir, JobProbe())
        if state.state == RunState.DONE:
            result = RunDir(run_dir).read_result()
            self.done += 1
            self._print(
                "done",
                run_dir.name,
                f"  knn {result['knn_acc']:.4f} linear {result['linear_acc']:.4f} "
                f"({result['train_seconds']:.0f} s training)",
            )
        elif state.state == RunState.FAILED:
            self.failed += 1
            self._print("failed", run_dir.name, f"  {state.message}")
        else:
            self.stopped += 1
            reason = state.message or "its job ended without a result (killed?)"
            log = f"; log: {state.status['log']}" if state.status.get("log") else ""
            self._print("stopped", run_dir.name, f"  {state.state}: {reason}; the next sweep resumes it{log}")


class SlotScheduler:
    """Start each job when a slot is free and its `run:` source is done; wait for all of them. A run
    another invocation trains (one left running by an earlier invocation, or claimed first by one
    started beside this) is waited for and holds a slot: `--max-parallel` counts every live run."""

    def __init__(self, slots: list, start: Callable[[RunJob, Any], Callable[[], bool]], poll_s: float):
        self.slots = slots
        self.start = start
        self.poll_s = poll_s
        self.host = socket.gethostname()

    def _label(self, status: dict) -> str | None:
        """The slot a run of another invocation holds here ("" when unknown), None when it runs elsewhere."""
        return None if status.get("host") != self.host else str(status.get("slot") or "")

    def _free(self, running: dict, watched: dict[str, str | None]):
        held = [label for label in watched.values() if label is not None]
        if len(running) + len(held) >= len(self.slots):
            return None
        used = [slot for _, slot in running.values()]
        for slot in self.slots:
            if slot in used:
                used.remove(slot)
            elif str(slot) in held:
                held.remove(str(slot))
            else:
                return slot
        return None

    def run(self, launch: Launch, progress: Progress) -> None:
        waiting = list(launch.jobs)
        running: dict[str, tuple[Callable[[], bool], object]] = {}
        watched: dict[str, str | None] = {}
        probe = JobProbe()
        for run_id in launch.watch:
            status = run_state(launch.sweep_dir / run_id, probe).status
            watched[run_id] = self._label(status)
            progress.waits(run_id, status)

        def settle(run_id: str) -> None:
            state = run_state(launch.sweep_dir / run_id, JobProbe())
            if state.state in LIVE:  # another invocation's writer has it: wait for that one
                watched[run_id] = self._label(state.status)
                progress.waits(run_id, state.status)
            else:
                progress.finished(launch.sweep_dir / run_id)

        while waiting or running or watched:
            changed = False
            for run_id, (is_done, _slot) in list(running.items()):
                if is_done():
                    del running[run_id]
                    settle(run_id)
                    changed = True
            probe = JobProbe()
            for run_id in list(watched):
                if run_state(launch.sweep_dir / run_id, probe).state not in LIVE:
                    del watched[run_id]
                    progress.finished(launch.sweep_dir / run_id)
                    changed = True
            pending_ids = {job.run_id for job in waiting} | set(running) | set(watched)
            for job in list(waiting):
                if job.depends_on in pending_ids:
                    continue  # its prior source has not finished yet
                slot = self._free(running, watched)
                if slot is None:
                    break
                waiting.remove(job)
                pending_ids.discard(job.run_id)
                changed = True
                if run_state(launch.sweep_dir / job.run_id, probe).state in LIVE + (RunState.DONE,):
                    settle(job.run_id)  # another invocation finished it or trains it since the plan was made
                    continue
                progress.started(job.run_id, str(slot))
                running[job.run_id] = (self.start(job, slot), slot)
            if not changed:
                time.sleep(self.poll_s)


@EXECUTORS.register("debug")
class DebugExecutor:
    """In this process, one run after another: for tests and for debugging with pdb."""

    waits = True

    def __init__(self, options: ExecutorOptions, resources: Resources):
        self.options = options

    def run(self, launch: Launch, progress: Progress) -> None:
        def start(job: RunJob, slot) -> Callable[[], bool]:
            try:
                job()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:  # noqa: BLE001 - the run's status.json holds the error; the sweep goes on
                pass
            return lambda: True

        SlotScheduler(["in-process"], start, poll_s=self.options.poll_s).run(launch, progress)

    def start_workers(self, workers: Workers) -> list:
        workers.make(None, "debug", 0)()  # one worker, here, to the end of the study
        return []


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


def mark_submitted(
    run_dir: Path,
    executor: str,
    job_id: str | None,
    pid: int | None = None,
    log: Path | None = None,
    slot: str | None = None,
) -> None:
    """Record the job in status.json as `pending`, under a brief claim: never over a run a live writer
    holds (the job has started, or another invocation trains it) nor over a finished one."""
    update_status(
        run_dir,
        RunState.PENDING,
        executor=executor,
        job_id=job_id,
        job_pid=pid,
        host=socket.gethostname(),
        log=str(log) if log else None,
        slot=slot,
        note=None,
        error=None,
    )


@EXECUTORS.register("slurm")
class SlurmExecutor:
    """Job arrays through submitit's SlurmExecutor: submit, record the job ids, return."""

    waits = False

    def __init__(self, options: ExecutorOptions, resources: Resources):
        self.profile = load_profile(options.profile)
        self.resources = resources
        if not shutil.which("sbatch"):
            raise ConfigError(
                "--executor slurm needs SLURM's sbatch on this machine (a login node); "
                "valid executors here: local, debug"
            )

    def run(self, launch: Launch, progress: Progress) -> None:
        import submitit

        executor = submitit.SlurmExecutor(
            folder=launch.sweep_dir / ".submitit" / "%j", max_num_timeout=self.resources.max_attempts
        )
        params = self.profile.sbatch_parameters(self.resources)
        size = self.profile.max_array_size or cluster_max_array_size()
        array_of: dict[str, str] = {}  # run_id -> array job id (for afterany dependencies)
        probe = JobProbe()
        for run_id in launch.watch:
            status = run_state(launch.sweep_dir / run_id, probe).status
            if status.get("executor") == "slurm" and status.get("job_id"):
                array_of[run_id] = str(status["job_id"]).split("_")[0]
        launching = {job.run_id for job in launch.jobs}
        first: list[RunJob] = []
        second: list[RunJob] = []  # the jobs whose prior source is in this launch or already queued
        for job in launch.jobs:
            (second if job.depends_on in array_of or job.depends_on in launching else first).append(job)
        stages = [first, second]
        for stage in stages:
            for chunk in chunks(stage, size):
                waits_for = sorted({array_of[j.depends_on] for j in chunk if j.depends_on in array_of})
                executor.update_parameters(
                    **params, dependency=f"afterany:{':'.join(waits_for)}" if waits_for else None
                )
                for job in chunk:
                    job.threads = self.resources.cpus  # torch and faiss keep to the CPUs SLURM gave the task
                with executor.batch():
                    handles = [executor.submit(job) for job in chunk]
                for job, handle in zip(chunk, handles):
                    array_of[job.run_id] = handle.job_id.split("_")[0]
                    mark_submitted(job.run_dir, "slurm", handle.job_id, log=handle.paths.stderr)
                    progress.started(job.run_id, f"SLURM job {handle.job_id}")

    def start_workers(self, workers: Workers) -> list:
        import submitit

        params = self.profile.sbatch_parameters(workers.resources)
        params["time"] = params["time"] * max(1, -(-workers.trials // workers.count))  # a worker runs several trials
        executor = submitit.SlurmExecutor(folder=workers.folder / "%j")
        executor.update_parameters(**params)
        with executor.batch():
            return [
                executor.submit(workers.make(workers.resources.cpus, "slurm", index)) for index in range(workers.count)
            ]
