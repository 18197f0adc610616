"""The state of each run of a sweep, read from results/<sweep>/<run_id>/status.json and result.json,
with the jobs behind `running` and `pending` runs checked for life (local processes by pid, SLURM jobs
through squeue), so a run whose job died is reported as stale and run again instead of waited for, and
a run whose files are damaged is reported as corrupt (the file and why) and redone. A folder named by a
run_id whose files name another run (a copy) is corrupt too: it is never counted as this run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from benchmark.errors import DamagedFile
from benchmark.liveness import JobProbe
from benchmark.rundir import RunDir, is_run_id
from benchmark.runstate import RunState


@dataclass(frozen=True)
class RunView:
    """How a sweep sees one run: its state (one of SWEEP_STATES), status.json, what is damaged."""

    run_id: str
    state: RunState
    status: dict
    problem: DamagedFile | None = None  # what is damaged, for `corrupt`
    reason: str | None = None  # why the state is `unknown`: whose job this machine cannot check, and why

    @property
    def attempt(self) -> int:
        return int(self.status.get("attempt", 0))

    @property
    def message(self) -> str:
        if self.problem is not None:
            return f"{self.problem.path.name}: {self.problem.reason}"
        if self.reason is not None:
            return self.reason
        return self.status.get("error") or self.status.get("note") or ""


def run_state(run_dir: Path, probe: JobProbe) -> RunView:
    run = RunDir(run_dir)
    if not run.status.exists():
        if run.result.exists() or run.checkpoint.exists():
            return RunView(
                run_dir.name, RunState.CORRUPT, {}, DamagedFile(run.status, "missing beside the run's files")
            )
        return RunView(run_dir.name, RunState.NEW, {})
    try:
        status = run.read_status()
    except DamagedFile as err:
        return RunView(run_dir.name, RunState.CORRUPT, {}, err)
    named = status.get("run_id")
    if named and is_run_id(run_dir.name) and named != run_dir.name:  # a copy of another run's folder
        copied = DamagedFile(run.status, f"names run {named}, not {run_dir.name}: another run's files")
        return RunView(run_dir.name, RunState.CORRUPT, status, copied)
    state = RunState(status["state"])
    if state == RunState.FAILED:
        return RunView(run_dir.name, RunState.FAILED, status)
    if state in (RunState.RUNNING, RunState.PENDING):
        alive = probe.alive(status)
        if alive is None:
            return RunView(run_dir.name, RunState.UNKNOWN, status, reason=probe.unknown_reason(status))
        if alive:
            return RunView(run_dir.name, RunState.RUNNING if state == RunState.RUNNING else RunState.QUEUED, status)
        label = RunState.STALE if state == RunState.RUNNING else RunState.INTERRUPTED
    elif not run.result.exists():
        return RunView(run_dir.name, RunState.STALE, status)  # `done` without its result: killed between the two
    else:
        label = RunState.DONE
    problem = run.damage({**status, "run_id": named or run_dir.name} if is_run_id(run_dir.name) else status)
    return RunView(run_dir.name, RunState.CORRUPT if problem else label, status, problem)


def states(sweep_dir: Path, run_ids: Iterable[str], probe: JobProbe | None = None) -> dict[str, RunView]:
    probe = probe or JobProbe()
    return {run_id: run_state(Path(sweep_dir) / run_id, probe) for run_id in run_ids}
