"""What every executor shares: its options, what it is handed (a launch of run jobs, a study's workers),
the Executor protocol and its registry, the progress lines, and how a submitted job is recorded."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, TextIO

from benchmark.claim import update_status
from benchmark.registry import Registry
from benchmark.rundir import RunDir
from benchmark.runstate import RunState
from benchmark.sweep.job import RunJob
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
