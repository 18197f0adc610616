"""One attempt's status lifecycle, as one context manager: `running` once the attempt begins, then on
exit `done` (with its result.json), `pending` (stopped on request or by Ctrl-C: the next attempt
resumes it) or `failed` (the error and its traceback); in every case the tracker is finished and the
claim released. train_run keeps to the training; what status.json says about it is decided here."""

from __future__ import annotations

import traceback
from types import TracebackType

from benchmark.attempt import Attempt
from benchmark.run_result import RunResult
from benchmark.runstate import RunState
from benchmark.tracking import Tracker


class RunInterrupted(Exception):
    """The run stopped at a step boundary on request (preemption, time limit), its checkpoint saved."""


STOPPED = (RunInterrupted, KeyboardInterrupt)  # the run is `pending`, not `failed`: it resumes


class RunLifecycle:
    """`with RunLifecycle(attempt) as life:` around a claimed attempt: `life.begin(start_epoch)` marks
    it running; set `life.tracker` once there is one, and `life.result` when the run finished (a
    process that writes nothing, rank > 0, leaves it None and nothing is recorded)."""

    def __init__(self, attempt: Attempt):
        self.attempt = attempt
        self.tracker: Tracker | None = None
        self.result: RunResult | None = None

    def begin(self, start_epoch: int) -> None:
        self.attempt.begin(start_epoch)  # status `running`, attempt + 1, this process as the writer

    def __enter__(self) -> RunLifecycle:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if err is None:
                try:
                    self._done()
                except BaseException as failure:  # a result that could not be written fails the run
                    self._ended(failure)
                    raise
            else:
                self._ended(err)
        finally:
            self.attempt.release()  # the error, if any, goes on to the caller

    def _done(self) -> None:
        if self.result is None:
            return
        result = self.result.as_dict()
        self.attempt.run.write_result(result)
        self.attempt.run.write_status(RunState.DONE, error=None)
        if self.tracker is not None:
            self.tracker.finish(result)

    def _ended(self, err: BaseException) -> None:
        if isinstance(err, STOPPED):
            note = str(err) if isinstance(err, RunInterrupted) else "interrupted (Ctrl-C): rerunning resumes it"
            self.attempt.end(RunState.PENDING, error=None, note=note)
            if self.tracker is not None:
                self.tracker.finish(None, preempted=True)
            return
        trace = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=8))
        self.attempt.end(RunState.FAILED, error=f"{type(err).__name__}: {err}", traceback=trace)
        if self.tracker is not None:
            self.tracker.finish(None, failed=True)
