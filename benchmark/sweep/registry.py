"""The state of each run of a sweep, read from results/<sweep>/<run_id>/status.json and result.json,
with the jobs behind `running` and `pending` runs checked for life (local processes by pid, SLURM jobs
through squeue), so a run whose job died is reported as stale and run again instead of waited for."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from benchmark.rundir import RunDir

# done, failed: final. running: a live job trains it. queued: submitted, its job alive.
# stale: `running` but its job is gone. interrupted: `pending` without a live job (Ctrl-C, requeue
# refused). new: never started. unknown: the job may live on a machine we cannot see.
RUN_STATES = ("done", "failed", "running", "queued", "stale", "interrupted", "new", "unknown")
TO_RUN = ("new", "stale", "interrupted")


@dataclass(frozen=True)
class RunState:
    run_id: str
    state: str
    status: dict

    @property
    def attempt(self) -> int:
        return int(self.status.get("attempt", 0))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class JobProbe:
    """Answers "is this run's job alive?"; asks squeue once per probe, for all SLURM jobs together."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self._slurm_jobs: dict[str, str] | None = None
        self._slurm_checked = False

    def slurm_jobs(self) -> dict[str, str] | None:
        """This user's queued jobs, id (plain and array form) -> SLURM state; None without squeue."""
        if not self._slurm_checked:
            self._slurm_checked = True
            if shutil.which("squeue"):
                try:
                    out = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i %A %T"],
                                         capture_output=True, text=True, timeout=30, check=True).stdout
                    self._slurm_jobs = {}
                    for line in out.splitlines():
                        array_id, job_id, state = line.split()
                        self._slurm_jobs[array_id] = self._slurm_jobs[job_id] = state
                except (subprocess.SubprocessError, OSError, ValueError):
                    self._slurm_jobs = None
        return self._slurm_jobs

    def slurm_state(self, status: dict) -> str | None:
        jobs = self.slurm_jobs() if status.get("executor") == "slurm" else None
        return None if jobs is None else jobs.get(str(status.get("job_id")))

    def alive(self, status: dict) -> bool | None:
        """True/False when it can tell, None when the job ran somewhere this machine cannot see."""
        if status.get("executor") == "slurm" and status.get("job_id"):
            jobs = self.slurm_jobs()
            return None if jobs is None else str(status["job_id"]) in jobs
        if status.get("host") != self.host:
            return None
        pid = status.get("pid") if status.get("state") == "running" else status.get("job_pid")
        return pid_alive(int(pid)) if pid else False


def run_state(run_dir: Path, probe: JobProbe) -> RunState:
    run = RunDir(run_dir)
    if not run.status.is_file():
        return RunState(run_dir.name, "new", {})
    status = run.read_status()
    state = status.get("state")
    if state == "done":
        label = "done" if run.result.is_file() else "stale"
    elif state == "failed":
        label = "failed"
    elif state in ("running", "pending"):
        alive = probe.alive(status)
        live, dead = ("running", "stale") if state == "running" else ("queued", "interrupted")
        label = "unknown" if alive is None else live if alive else dead
    else:
        label = "stale"
    return RunState(run_dir.name, label, status)


def states(sweep_dir: Path, run_ids: Iterable[str], probe: JobProbe | None = None) -> dict[str, RunState]:
    probe = probe or JobProbe()
    return {run_id: run_state(Path(sweep_dir) / run_id, probe) for run_id in run_ids}

