"""The `debug` executor: every run in this process, one after another."""

from __future__ import annotations

from typing import Callable

from benchmark.sweep.executors.base import EXECUTORS, ExecutorOptions, Launch, Progress, Workers
from benchmark.sweep.executors.slots import SlotScheduler
from benchmark.sweep.job import RunJob
from benchmark.sweep.spec import Resources


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
