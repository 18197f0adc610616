"""The state of each run of a sweep, read from results/<sweep>/<run_id>/status.json and result.json,
with the jobs behind `running` and `pending` runs checked for life (local processes by pid, SLURM jobs
through squeue), so a run whose job died is reported as stale and run again instead of waited for, and
a run whose files are damaged is reported as corrupt (the file and why) and redone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from benchmark.errors import DamagedFile
from benchmark.liveness import JobProbe
from benchmark.rundir import RunDir

# done, failed: final. running: a live job trains it. queued: submitted, its job alive.
# stale: `running` but its job is gone (killed, node lost). interrupted: `pending` without a live job
# (Ctrl-C, requeue refused). corrupt: a damaged file (status, result, config, metrics). new: never
# started. unknown: the job may live on a machine we cannot see.
RUN_STATES = ("done", "failed", "running", "queued", "stale", "interrupted", "corrupt", "new", "unknown")
TO_RUN = ("new", "stale", "interrupted", "corrupt")


@dataclass(frozen=True)
class RunState:
    run_id: str
    state: str
    status: dict
    problem: DamagedFile | None = None  # what is damaged, for `corrupt`

    @property
    def attempt(self) -> int:
        return int(self.status.get("attempt", 0))

    @property
    def message(self) -> str:
        if self.problem is not None:
            return f"{self.problem.path.name}: {self.problem.reason}"
        return self.status.get("error") or self.status.get("note") or ""


def run_state(run_dir: Path, probe: JobProbe) -> RunState:
    run = RunDir(run_dir)
    if not run.status.is_file():
        if run.result.is_file() or run.checkpoint.is_file():
            return RunState(run_dir.name, "corrupt", {}, DamagedFile(run.status, "missing beside the run's files"))
        return RunState(run_dir.name, "new", {})
    try:
        status = run.read_status()
    except DamagedFile as err:
        return RunState(run_dir.name, "corrupt", {}, err)
    state = status["state"]
    if state == "failed":
        return RunState(run_dir.name, "failed", status)
    if state in ("running", "pending"):
        alive = probe.alive(status)
        if alive is None:
            return RunState(run_dir.name, "unknown", status)
        if alive:
            return RunState(run_dir.name, "running" if state == "running" else "queued", status)
        label = "stale" if state == "running" else "interrupted"
    elif not run.result.is_file():
        return RunState(run_dir.name, "stale", status)  # `done` without its result: killed between the two
    else:
        label = "done"
    problem = run.damage(status)
    return RunState(run_dir.name, "corrupt" if problem else label, status, problem)


def states(sweep_dir: Path, run_ids: Iterable[str], probe: JobProbe | None = None) -> dict[str, RunState]:
    probe = probe or JobProbe()
    return {run_id: run_state(Path(sweep_dir) / run_id, probe) for run_id in run_ids}
