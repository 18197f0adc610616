"""The scheduler's view of this process: job ids from SLURM's and submitit's environment, and
submitit's private preemption hook (benchmark/scheduler.py), checked against a real submitit job
that receives a real signal: if a submitit release moves the signal or its handler, this fails."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

from benchmark.scheduler import SUBMITIT_CHECKED, current_job_id, submitit_preemption

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job's process cannot import this test file


def test_current_job_id_prefers_slurms_array_form_then_its_job_id_then_submitits(monkeypatch):
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    assert current_job_id() is None
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
    assert current_job_id() == "4242"
    monkeypatch.setenv("SLURM_JOB_ID", "1001")
    assert current_job_id() == "1001"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1000")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    assert current_job_id() == "1000_7"  # as squeue -r and submitit name an array task


def test_no_preemption_hook_outside_a_submitit_job(monkeypatch):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert submitit_preemption() is None


class WaitsForPreemption(submitit.helpers.Checkpointable):
    """First attempt: take submitit's hook, say where to send the signal, wait for it, then hand over to
    submitit (which must checkpoint, requeue and exit). Second attempt: report."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __call__(self) -> dict:
        attempts = self.folder / "attempts"
        attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
        if len(attempts.read_text()) > 1:
            return {"attempts": len(attempts.read_text())}
        preemption = submitit_preemption()
        if preemption is None:
            raise RuntimeError("no submitit preemption handler inside a submitit job")
        requested = threading.Event()
        signal.signal(preemption.signum, lambda signum, frame: requested.set())
        (self.folder / "ready.json").write_text(json.dumps({"pid": os.getpid(), "signum": preemption.signum}))
        if not requested.wait(timeout=300):
            raise RuntimeError("the preemption signal never arrived")
        preemption.requeue()
        raise RuntimeError("submitit's preemption handler returned instead of requeueing the job")


@pytest.mark.slow
def test_submitits_preemption_hook_requeues_a_real_job_on_a_real_signal(tmp_path):
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=30)  # > 10 min: submitit counts the signal as a preemption
    job = executor.submit(WaitsForPreemption(tmp_path))
    ready = tmp_path / "ready.json"
    deadline = time.monotonic() + 300
    while not ready.exists() and not job.done():
        assert time.monotonic() < deadline, "the job never got ready"
        time.sleep(0.2)
    assert ready.exists(), f"the job ended before it was ready: {job.exception()}"
    where = json.loads(ready.read_text())
    assert where["signum"] == signal.SIGUSR2  # submitit's default (SUBMITIT_PREEMPT_SIGNAL unset)
    os.kill(where["pid"], where["signum"])  # as SLURM signals a task before preempting it
    try:
        result = job.result()
    except Exception as err:  # noqa: BLE001 - the message below names what to check
        pytest.fail(
            f"submitit {submitit.__version__} no longer requeues through the hook that "
            f"benchmark/scheduler.py reads (checked with {SUBMITIT_CHECKED}): {err}"
        )
    assert result == {"attempts": 2}  # the handler checkpointed and requeued: a second attempt ran
