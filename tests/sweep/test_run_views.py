"""Run states from the results tree: what a sweep skips, reruns, waits for; the status table."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from benchmark.rundir import RESULT_KEYS, RunDir
from benchmark.sweep.launch import describe_plan, select
from benchmark.sweep.plan import expand
from benchmark.sweep.run_views import JobProbe, run_state
from benchmark.sweep.spec import parse_sweep
from benchmark.sweep.status import format_status

HOST = socket.gethostname()


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def write_run(sweep_dir, run_id, state, result=False, **status):
    run = RunDir(sweep_dir / run_id)
    run.write_status(state, **status)
    if result:
        run.write_result(
            {key: 0.5 for key in RESULT_KEYS}
            | {"run_id": run_id, "epochs": 4, "train_seconds": 40.0, "eval_seconds": 2.0}
        )
        for epoch in range(1, 5):
            run.append_metrics({"epoch": epoch, "loss": 1.0 / epoch})
    return run


@pytest.fixture
def plan():
    return expand(
        parse_sweep({"name": "s", "grid": {"seed": list(range(8))}, "fixed": {"dataset": "digits", "epochs": 4}})
    )


def test_each_state_is_skipped_rerun_or_waited_for(plan, tmp_path):
    ids = [c.run_id for c in plan.cells]
    sweep = tmp_path / "s"
    write_run(sweep, ids[0], "done", result=True, attempt=1)
    write_run(sweep, ids[1], "failed", error="boom", attempt=1)
    write_run(sweep, ids[2], "running", host=HOST, pid=os.getpid(), attempt=1)  # alive: this process
    write_run(sweep, ids[3], "running", host=HOST, pid=dead_pid(), attempt=1)  # its job died
    write_run(sweep, ids[4], "pending", host=HOST, job_pid=dead_pid(), note="interrupted (Ctrl-C)")
    write_run(sweep, ids[5], "pending", host=HOST, job_pid=os.getpid(), executor="local")  # submitted, alive
    write_run(sweep, ids[6], "done", attempt=1)  # status says done but result.json is missing
    expected = ["done", "failed", "running", "stale", "interrupted", "queued", "stale", "new"]
    assert [run_state(sweep / i, JobProbe()).state for i in ids] == expected

    selection = select(plan, sweep, retry_failed=False)
    assert [c.run_id for c in selection.to_run] == [ids[3], ids[4], ids[6], ids[7]]
    assert selection.watch == [ids[2], ids[5]]
    retry = select(plan, sweep, retry_failed=True)
    assert [c.run_id for c in retry.to_run] == [ids[1], ids[3], ids[4], ids[6], ids[7]]


def test_a_run_on_another_machine_is_not_guessed_at(plan, tmp_path):
    run_id = plan.cells[0].run_id
    write_run(tmp_path / "s", run_id, "running", host="some-other-node", pid=1)
    assert run_state(tmp_path / "s" / run_id, JobProbe()).state == "unknown"
    assert select(plan, tmp_path / "s", retry_failed=True).to_run == plan.cells[1:]


def test_a_slurm_job_without_squeue_is_unknown(plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a machine without SLURM's commands
    run_id = plan.cells[0].run_id
    write_run(tmp_path / "s", run_id, "pending", executor="slurm", job_id="123_4", host="login")
    assert run_state(tmp_path / "s" / run_id, JobProbe()).state == "unknown"


def test_dry_run_counts_and_costs(plan, tmp_path):
    ids = [c.run_id for c in plan.cells]
    for run_id in ids[:2]:
        write_run(tmp_path / "s", run_id, "done", result=True)
        RunDir(tmp_path / "s" / run_id).config.write_text(
            '{"dataset": "digits", "method": "simclr", '
            '"backbone": "auto", "batch_size": 256, '
            '"subset": null, "image_size": null}'
        )
    text = describe_plan(plan, select(plan, tmp_path / "s", False), tmp_path / "s")
    assert "8 cells (8 seed), 0 excluded, 0 collapsed into identical runs: 8 runs" in text
    assert "2 done, 6 new; 6 to run" in text
    assert "6 CPU runs x 60 min = 6.0 run-hours" in text
    # measured: 40 s / 4 epochs + 2 s evaluation = 42 s per run of 4 epochs, for 6 runs
    assert "estimate from measured runs: 4.2 min for the 6 of 6 runs" in text


def test_status_table_shows_every_planned_run(plan, tmp_path):
    from benchmark.sweep.launch import SweepRequest, write_manifest

    ids = [c.run_id for c in plan.cells]
    write_manifest(plan, tmp_path / "s", SweepRequest(file=tmp_path / "s.yaml"))
    write_run(tmp_path / "s", ids[0], "done", result=True, attempt=1)
    write_run(tmp_path / "s", ids[1], "failed", error="TrainingError: loss became nan", attempt=2)
    text = format_status(tmp_path / "s")
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["seed", "run_id", "state"]
    assert lines[1].split()[:4] == ["0", ids[0], "done", "1"] and "50.00" in lines[1]
    assert "failed" in lines[2] and "loss became nan" in lines[2]
    assert lines[-1] == "8 runs: 1 done, 1 failed, 6 new"
