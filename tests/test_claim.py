"""One writer per run directory: claims made by real processes racing for them, stale claims taken
over, live ones (and ones this machine cannot check) respected, a writer that lost its claim stopping,
and the sweep's own status writes never overwriting a finished run or a live writer's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmark.claim import ClaimedRunDir, RunBusy, claim, holder
from benchmark.errors import TrainingError
from benchmark.liveness import process_start
from benchmark.rundir import RESULT_KEYS, RunDir
from benchmark.sweep.executors import mark_submitted
from benchmark.sweep.job import RunJob
from tests.sweep.test_run_views import dead_pid

RACE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from benchmark.claim import RunBusy, claim
    start, folders = float(sys.argv[1]), sys.argv[2:]
    while time.time() < start:
        pass
    won = []
    for folder in folders:
        try:
            claim(Path(folder))
            won.append(folder)
        except RunBusy:
            pass
    print(" ".join(won))
""")


def test_of_processes_racing_for_runs_exactly_one_claims_each(tmp_path):
    folders = [str(tmp_path / f"run{i}") for i in range(30)]
    start = time.time() + 3.0  # every process is past its imports and spinning when the race starts
    racers = [
        subprocess.Popen([sys.executable, "-c", RACE, str(start), *folders], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    won = [process.communicate(timeout=120)[0].split() for process in racers]
    claimed = [folder for wins in won for folder in wins]
    assert sorted(claimed) == sorted(folders)  # each run claimed once, by one racer (they all exited: stale now)


def test_a_claim_is_taken_over_only_when_its_writer_is_gone(tmp_path):
    run = tmp_path / "run"
    first = claim(run)
    with pytest.raises(RunBusy, match="held by pid"):
        claim(run)  # this live process holds it (a second claim of the same process too)
    first.release()
    second = claim(run)  # released: free
    assert second.number == first.number + 1 and second.held() and not first.held()
    record = {**second.record, "pid": dead_pid(), "token": "gone"}  # a writer that died without releasing
    (run / f"claim.{second.number + 1}.json").write_text(json.dumps(record))
    third = claim(run)
    assert third.number == second.number + 2 and sorted(p.name for p in run.glob("claim.*.json")) == [third.path.name]


def test_a_reused_pid_and_a_damaged_claim_hold_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert process_start(os.getpid()) is not None  # /proc is there: the start time tells a reused pid
    reused = {"host": os.uname().nodename, "pid": os.getpid(), "pid_start": "1", "purpose": "train", "token": "t"}
    (run / "claim.1.json").write_text(json.dumps(reused))
    assert holder(run) is None and claim(run).number == 2
    (run / "claim.3.json").write_text('{"host": "x", "pid"')
    assert claim(run).number == 4


def test_a_writer_on_another_machine_that_cannot_be_checked_keeps_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "claim.1.json").write_text(
        json.dumps({"host": "node-elsewhere", "pid": 1, "purpose": "train", "executor": "local", "token": "t"})
    )
    with pytest.raises(RunBusy, match="node-elsewhere"):
        claim(run)


def test_a_writer_that_lost_its_claim_stops_without_writing(tmp_path):
    held = claim(tmp_path / "run")
    run = ClaimedRunDir(tmp_path / "run", held)
    run.write_status("running", attempt=1)
    (tmp_path / "run" / f"claim.{held.number + 1}.json").write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    before = run.status.read_bytes()
    with pytest.raises(TrainingError, match="no longer this process's"):
        run.write_status("done")
    with pytest.raises(TrainingError):
        run.append_metrics({"epoch": 1})
    assert run.status.read_bytes() == before and not run.metrics.exists()


def _finished_run(path: Path, run_id: str) -> RunDir:
    run = RunDir(path)
    run.write_status("done", run_id=run_id, attempt=1)
    run.write_result({key: 0.5 for key in RESULT_KEYS} | {"run_id": run_id, "epochs": 1})
    run.append_metrics({"epoch": 1, "loss": 1.0})
    return run


def _holding(path: Path) -> subprocess.Popen:
    """Another live process holding the run for training."""
    code = (
        f"import time; from pathlib import Path; from benchmark.claim import claim; claim(Path({str(path)!r})); "
        f"print('held', flush=True); time.sleep(120)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_marking_a_submission_never_overwrites_done_or_a_live_writer(tmp_path):
    run = _finished_run(tmp_path / "done", "done")
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if not p.name.startswith("claim.")}
    mark_submitted(run.path, "local", "123", pid=os.getpid())
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if not p.name.startswith("claim.")} == before

    live = RunDir(tmp_path / "live")
    live.write_status("running", run_id="live", attempt=1, pid=12345)
    other = _holding(live.path)
    try:
        status = live.status.read_bytes()
        mark_submitted(live.path, "local", "456", pid=os.getpid())
        assert live.status.read_bytes() == status
    finally:
        other.kill()
        other.wait()
    mark_submitted(live.path, "local", "456", pid=os.getpid())  # its writer is gone: recorded now
    assert live.read_status()["state"] == "pending" and live.read_status()["job_id"] == "456"


def test_a_queued_job_leaves_a_finished_run_and_a_run_another_process_trains(tmp_path):
    from benchmark.config import RunConfig

    config = RunConfig.from_dict({"dataset": "digits", "epochs": 1, "progress": False})
    run = _finished_run(tmp_path / config.run_id, config.run_id)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.path.iterdir()}
    assert RunJob(config, run.path, tmp_path, [])()["run_id"] == config.run_id
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.path.iterdir()} == before

    busy = RunDir(tmp_path / "busy")
    busy.write_status("running", run_id=config.run_id, attempt=1)
    other = _holding(busy.path)
    try:
        status = busy.status.read_bytes()
        assert RunJob(config, busy.path, tmp_path, [])() is None  # exits quietly: nothing loaded or written
        assert busy.status.read_bytes() == status and not busy.metrics.exists()
    finally:
        other.kill()
        other.wait()
