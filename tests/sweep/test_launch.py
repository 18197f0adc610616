"""Sweeps that really run: the debug executor in-process, the local executor with submitit jobs,
W&B offline files per run, a W&B failure, Ctrl-C and kill -9 mid-sweep, and preemption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import submitit

from benchmark.cli import main
from benchmark.rundir import RunDir, read_json
from benchmark.sweep.plan import expand
from benchmark.sweep.run_views import JobProbe, run_state
from benchmark.sweep.spec import load_sweep
from benchmark.tracking import wandb_run_id
from tests.conftest import REPO
from tests.wandb_records import history_steps, run_record

SMALL = (
    "{dataset: digits, batch_size: 128, checkpoint_every: 1, method_args: {proj_hidden_dim: 128, proj_output_dim: 32}}"
)


def sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def runs_of(path: Path, results: Path) -> list[tuple]:
    plan = expand(load_sweep(path))
    return [(cell, RunDir(results / plan.spec.name / cell.run_id)) for cell in plan.cells]


@pytest.fixture
def e2e(tmp_path, monkeypatch):
    """simclr/byol x prior none/pixel/run: of the SimCLR run, plus a seed that diverges (lr 1e30)."""
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = sweep_file(
        tmp_path,
        f"""
        name: e2e
        grid:
          method: [simclr, byol]
          prior: [none, pixel, "run:method=simclr"]
          seed: [0, 1]
        fixed: {SMALL}
        per:
          method: {{byol: {{method_args: {{pred_hidden_dim: 128}}}}}}
          prior: {{pixel: {{k: 5}}, "run:method=simclr": {{k: 5}}}}
          seed: {{1: {{optimizer: sgd, lr: 1.0e+30}}}}
        exclude: [{{method: byol, seed: 1}}]
        wandb: {{mode: offline, project: gps-bench-tests}}
    """.replace("checkpoint_every: 1,", "checkpoint_every: 1, epochs: 2,"),
    )
    return path


def test_debug_sweep_runs_skips_retries_and_logs_each_run_to_wandb(e2e, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["sweep", str(e2e), "--executor", "debug", "--results-dir", str(results)]) == 1  # failures exist
    out = capsys.readouterr().out
    runs = runs_of(e2e, results)
    assert len(runs) == 9
    states = {cell.label: run.read_status() for cell, run in runs}
    failed = {label for label, status in states.items() if status["state"] == "failed"}
    assert failed == {
        "method=simclr prior=none seed=1",
        "method=simclr prior=pixel seed=1",
        "method=simclr prior=run:method=simclr seed=1",
    }
    assert "loss became" in states["method=simclr prior=pixel seed=1"]["error"]
    assert "prior run" in states["method=simclr prior=run:method=simclr seed=1"]["error"]
    assert "| GPS-SimCLR (pixel) |" in out and "runs: 6 done, 3 failed, 0 missing of 9" in out  # the table

    for cell, run in runs:
        if run.read_status()["state"] != "done":
            continue
        result = read_json(run.result)
        assert result["run_id"] == cell.run_id and (result["prior_nn_agreement"] is None) == (
            cell.axes["prior"] == "none"
        )
        wandb_id = wandb_run_id(run.path, cell.run_id)
        files = list(run.path.glob(f"wandb/offline-run-*-{wandb_id}/run-{wandb_id}.wandb"))
        assert len(files) == 1, list(run.path.glob("wandb/*"))
        record = run_record(files[0])
        assert (record.run_id, record.job_type) == (wandb_id, "e2e")
        assert record.run_group.startswith(f"{cell.axes['method']}-") and record.display_name.endswith(
            f"-s{cell.axes['seed']}"
        )
        assert list(record.tags) == ["e2e", *cell.tags] and history_steps(files[0]) == [1, 2]

    done = {run.path: run.result.stat().st_mtime_ns for _, run in runs if run.result.is_file()}
    assert main(["sweep", str(e2e), "--executor", "debug", "--results-dir", str(results)]) == 1
    assert "nothing to run" in capsys.readouterr().out
    assert {path: RunDir(path).result.stat().st_mtime_ns for path in done} == done

    assert main(["sweep", str(e2e), "--executor", "debug", "--results-dir", str(results), "--retry-failed"]) == 1
    attempts = {cell.label: run.read_status()["attempt"] for cell, run in runs if cell.label in failed}
    assert attempts == {
        "method=simclr prior=none seed=1": 2,
        "method=simclr prior=pixel seed=1": 2,
        "method=simclr prior=run:method=simclr seed=1": 0,
    }  # never started: its source failed
    assert {path: RunDir(path).result.stat().st_mtime_ns for path in done} == done

    assert main(["status", str(results / "e2e")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "9 runs: 6 done, 3 failed"


def test_wandb_failure_never_fails_a_run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: online mode has no key and wandb.init fails
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = sweep_file(
        tmp_path,
        f"""
        name: wb
        grid: {{seed: [0]}}
        fixed: {SMALL.replace("checkpoint_every: 1,", "epochs: 1,")}
        wandb: {{mode: online}}
    """,
    )
    assert main(["sweep", str(path), "--executor", "debug", "--results-dir", str(tmp_path / "r")]) == 0
    assert "W&B init failed (UsageError" in capsys.readouterr().err
    [(cell, run)] = runs_of(path, tmp_path / "r")
    assert run.read_status()["state"] == "done" and len(run.read_metrics()) == 1


def test_local_executor_runs_jobs_in_parallel_slots(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = sweep_file(
        tmp_path,
        f"""
        name: loc
        grid: {{seed: [0, 1, 2]}}
        fixed: {SMALL.replace("checkpoint_every: 1,", "epochs: 2,")}
        wandb: {{mode: disabled}}
    """,
    )
    assert (
        main(["sweep", str(path), "--executor", "local", "--max-parallel", "2", "--results-dir", str(tmp_path / "r")])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count(" start ") == 3 and out.count(" done ") == 3 and "runs: 3 done, 0 failed, 0 missing of 3" in out
    for _, run in runs_of(path, tmp_path / "r"):
        status = run.read_status()
        assert status["state"] == "done" and status["executor"] == "local" and status["attempt"] == 1
        assert Path(status["log"]).is_file() and status["pid"] != os.getpid()  # its own process


def _start_sweep(path: Path, results: Path, log: Path) -> subprocess.Popen:
    """`gpsbench sweep` as a terminal runs it: own process group, SIGINT delivered to the whole group."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
            "from benchmark.cli import main; sys.exit(main(sys.argv[1:]))",
            "sweep",
            str(path),
            "--executor",
            "local",
            "--max-parallel",
            "2",
            "--results-dir",
            str(results),
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=REPO,
    )


def _wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.5)


@pytest.mark.slow
def test_ctrl_c_and_kill_9_mid_sweep_lose_and_repeat_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    path = sweep_file(
        tmp_path,
        f"""
        name: kill
        grid: {{method: [simclr], seed: [0, 1, 2, 3, 4]}}
        fixed: {SMALL.replace("checkpoint_every: 1,", "epochs: 6, checkpoint_every: 2,")}
    """,
    )
    results = tmp_path / "r"
    runs = runs_of(path, results)

    def done() -> dict:
        return {
            run.path.name: (run.result.stat().st_mtime_ns, run.result.read_text())
            for _, run in runs
            if run.result.is_file()
        }

    sweep = _start_sweep(path, results, tmp_path / "1.log")  # Ctrl-C after the first result
    _wait_for(lambda: len(done()) >= 1)
    os.killpg(sweep.pid, signal.SIGINT)
    assert sweep.wait(timeout=60) != 0
    # each run saved `pending`, or (if submitit's controller SIGKILLed it first) is `running` with a dead
    # pid, which the registry calls stale: either way nothing is left alive and the next sweep resumes it
    _wait_for(
        lambda: all(run_state(run.path, JobProbe()).state not in ("running", "queued") for _, run in runs), timeout=60
    )
    first = done()
    assert "interrupted: run the same command again" in (tmp_path / "1.log").read_text()

    sweep = _start_sweep(path, results, tmp_path / "2.log")  # kill -9 of the sweep alone
    _wait_for(lambda: len(done()) > len(first))
    sweep.kill()
    sweep.wait()
    second = done()

    assert main(["sweep", str(path), "--executor", "local", "--max-parallel", "2", "--results-dir", str(results)]) == 0
    final = done()
    assert len(final) == 5 and all(final[run_id] == value for run_id, value in second.items())
    assert all(second[run_id] == value for run_id, value in first.items())
    for _, run in runs:
        assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3, 4, 5, 6]  # no epoch logged twice
        assert run.read_status()["attempt"] <= 2


@pytest.mark.slow
def test_preempted_job_checkpoints_requeues_and_matches_an_uninterrupted_run(tmp_path):
    from benchmark.config import RunConfig
    from benchmark.sweep.job import RunJob

    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "method": "simclr",
            "epochs": 6,
            "batch_size": 64,
            "checkpoint_every": 100,
            "progress": False,
            "data_dir": str(tmp_path / "data"),
            "method_args": {"proj_hidden_dim": 128, "proj_output_dim": 32},
        }
    )
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=30)  # > 10 min: the signal counts as a preemption, not a timeout
    straight = executor.submit(RunJob(config, tmp_path / "r" / "straight", tmp_path / "r", [], threads=1))
    preempted_run = RunDir(tmp_path / "r" / "preempted")
    preempted = executor.submit(RunJob(config, preempted_run.path, tmp_path / "r", [], threads=1))
    _wait_for(lambda: len(preempted_run.read_metrics()) >= 2)
    os.kill(preempted_run.read_status()["pid"], submitit.JobEnvironment._usr_sig())  # as SLURM signals the task
    result, reference = preempted.result(), straight.result()

    status = preempted_run.read_status()
    assert status["state"] == "done" and status["attempt"] == 2
    log = Path(preempted.paths.stderr).read_text()
    assert "this job is preempted" in log and ", step " in log.split("resuming after epoch")[1]  # mid-epoch
    losses = [m["loss"] for m in preempted_run.read_metrics()]
    assert [m["epoch"] for m in preempted_run.read_metrics()] == [1, 2, 3, 4, 5, 6]
    assert losses == [m["loss"] for m in RunDir(tmp_path / "r" / "straight").read_metrics()]
    assert result["knn_acc"] == reference["knn_acc"] and result["linear_acc"] == reference["linear_acc"]
