"""The slot scheduler: start each run job when a slot (a GPU group, a share of the CPU, or this
process) is free and its `run:` source is done, and wait for all of them; the `debug` and `local`
executors run their jobs through it."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable

from benchmark.runstate import LIVE, RunState
from benchmark.sweep.executors.base import Launch, Progress
from benchmark.sweep.job import RunJob
from benchmark.sweep.run_views import JobProbe, run_state


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
