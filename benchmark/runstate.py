"""The states of a run, as one enum: the four a run's writer records in status.json, and the ones a
sweep reads from those files and from whether the run's job still lives.

Members are strings ("done" == RunState.DONE, with the same hash), so status.json, which the
contract of docs/design.md fixes, holds exactly the words it always held, and a state read back from a file
compares and looks up equal to the member.
"""

from __future__ import annotations

from enum import Enum


class RunState(str, Enum):
    # written by the run's writer to status.json
    PENDING = "pending"  # not started, or stopped (signal, requeue) and to be resumed
    RUNNING = "running"  # a writer trains it
    DONE = "done"  # result.json written: final
    FAILED = "failed"  # an error ended it (status.json has the error and traceback): final
    # how a sweep sees a run (benchmark/sweep/run_views.py)
    QUEUED = "queued"  # pending, its job alive: submitted and waiting
    STALE = "stale"  # running, but its job is gone (killed, node lost)
    INTERRUPTED = "interrupted"  # pending without a live job (Ctrl-C, requeue refused)
    CORRUPT = "corrupt"  # a damaged file (status, result, config, metrics)
    NEW = "new"  # never started
    UNKNOWN = "unknown"  # its job may live on a machine this one cannot see

    __hash__ = str.__hash__  # Enum hashes the name; a state read from a file must find the member's key

    def __str__(self) -> str:  # the word, as status.json and the tables print it
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# what status.json may hold, in the order its error messages list them
RECORDED = (RunState.PENDING, RunState.RUNNING, RunState.DONE, RunState.FAILED)
# what a sweep reports, in the order its counts are printed
SWEEP_STATES = (
    RunState.DONE,
    RunState.FAILED,
    RunState.RUNNING,
    RunState.QUEUED,
    RunState.STALE,
    RunState.INTERRUPTED,
    RunState.CORRUPT,
    RunState.NEW,
    RunState.UNKNOWN,
)
# a sweep starts these again (failed ones only with --retry-failed)
TO_RUN = (RunState.NEW, RunState.STALE, RunState.INTERRUPTED, RunState.CORRUPT)
# a job trains or will train these: a sweep waits for them
LIVE = (RunState.RUNNING, RunState.QUEUED)
