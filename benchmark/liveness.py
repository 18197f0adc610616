"""Is the process or job behind a record (a run's status.json, a claim) still alive?

On this host: its pid exists and, where /proc tells, started when the record says (a pid the system
reused for another process is not the writer). A SLURM job: squeue lists it (asked once per probe, for
all jobs together). A process on another host without a job id cannot be checked: None, "unknown",
which callers treat as alive rather than guess.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from pathlib import Path

from benchmark.runstate import RunState
from benchmark.scheduler import current_executor, current_job_id


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def same_process_alive(pid: int, started: str | None) -> bool:
    if not pid_alive(pid):
        return False
    return started is None or process_start(pid) in (None, started)


def this_process() -> dict:
    """Who is writing: what a record needs for others to tell whether its writer lives."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": process_start(pid),
        "job_id": current_job_id(),
        "executor": current_executor(),
    }


class JobProbe:
    """Answers "is this record's writer alive?"; asks squeue once per probe, for all SLURM jobs together."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self._slurm_jobs: dict[str, str] | None = None
        self._slurm_checked = False
        self.squeue_problem: str | None = None

    def slurm_jobs(self) -> dict[str, str] | None:
        """This user's queued jobs, id (plain and array form) -> SLURM state; None without squeue (or
        when it fails: `squeue_problem` says why)."""
        if not self._slurm_checked:
            self._slurm_checked = True
            if not shutil.which("squeue"):
                self.squeue_problem = "no squeue on this machine"
                return None
            try:
                done = subprocess.run(
                    ["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i %A %T"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                if done.returncode:
                    said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                    raise ValueError(f"squeue failed: {said[:160]}")
                self._slurm_jobs = {}
                for line in done.stdout.splitlines():
                    array_id, job_id, state = line.split()
                    self._slurm_jobs[array_id] = self._slurm_jobs[job_id] = state
            except subprocess.TimeoutExpired:
                self._slurm_jobs, self.squeue_problem = None, "squeue did not answer within 30 s"
            except (subprocess.SubprocessError, OSError, ValueError) as err:
                self._slurm_jobs, self.squeue_problem = None, str(err)
        return self._slurm_jobs

    def unknown_reason(self, status: dict) -> str:
        """Why alive() could not tell for this record, in words."""
        if status.get("executor") == "slurm" and status.get("job_id"):
            return f"SLURM job {status['job_id']}: cannot ask the cluster ({self.squeue_problem or 'squeue failed'})"
        return f"runs on {status.get('host')}, which this machine cannot check (no SLURM job id)"

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
        if status.get("state") == RunState.RUNNING:
            pid, started = status.get("pid"), status.get("pid_start")
        else:
            pid, started = status.get("job_pid"), None
        return same_process_alive(int(pid), started) if pid else False

    def writer_alive(self, record: dict) -> bool | None:
        """For a claim: its process on this host, else its SLURM job (a job's earlier attempt on
        another node, requeued as this very job, is gone), else unknown."""
        if record.get("host") == self.host and record.get("pid"):
            return same_process_alive(int(record["pid"]), record.get("pid_start"))
        if record.get("executor") == "slurm" and record.get("job_id"):
            if record["job_id"] == current_job_id():
                return False
            jobs = self.slurm_jobs()
            return None if jobs is None else str(record["job_id"]) in jobs
        return None
