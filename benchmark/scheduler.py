"""What the scheduler a process runs under says about it: its job id (SLURM, or submitit's local
executor), and submitit's preemption signal and handler.

submitit exposes no public way to learn which signal it requeues on, nor to call the handler it
installed for it, so `submitit_preemption` reads two private parts of it (named in its docstring); it
is the only place in gps-bench that does, and tests/test_scheduler.py checks it against a real
submitit job, so a submitit release that changes them fails that test instead of silently losing
preemptions.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Callable

SUBMITIT_CHECKED = "1.5.4"  # the submitit release whose private signal hook `submitit_preemption` was checked against


def current_job_id() -> str | None:
    """The scheduler's id for this process: SLURM's array form (as squeue and submitit show it), else
    SLURM's job id, else submitit's local job id."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID")


def current_executor() -> str:
    """`slurm` inside a SLURM job, else `local`: how others check this process's liveness."""
    return "slurm" if os.environ.get("SLURM_JOB_ID") else "local"


def in_submitit_job() -> bool:
    return "SUBMITIT_EXECUTOR" in os.environ


@dataclass(frozen=True)
class Preemption:
    signum: int  # the signal SLURM (or submitit's local executor) sends before preempting or timing out
    requeue: Callable[[], None]  # submitit's own handling: checkpoint() the job, requeue it, exit


def submitit_preemption() -> Preemption | None:
    """In a submitit job, the signal submitit requeues on and its handler for it; None outside one or
    where no callable handler is installed.

    Private submitit API read here (checked with submitit SUBMITIT_CHECKED): `JobEnvironment._usr_sig()`
    (the signal: USR2, or $SUBMITIT_PREEMPT_SIGNAL), and the handler that `JobEnvironment._handle_signals`
    installs on it before the job's function runs (`SignalHandler.checkpoint_and_try_requeue(signum,
    frame)`), which `requeue` calls as the signal would."""
    if not in_submitit_job():
        return None
    import submitit

    signum = submitit.JobEnvironment._usr_sig()
    handler = signal.getsignal(signum)
    if not callable(handler):
        return None
    return Preemption(int(signum), lambda: handler(signum, None))
