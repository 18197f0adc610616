"""Stopping a local sweep reaches its runs: Ctrl-C at a terminal (SIGINT to the whole foreground process
group) and a plain `kill` of the command (SIGTERM to it alone) both end with no training process
alive and every unfinished run `pending` with a checkpoint, resumed by the next sweep without an epoch
trained twice. A run whose process is killed is `stale` and rerun without --retry-failed."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.rundir import RunDir
from benchmark.sweep.plan import expand
from benchmark.sweep.run_views import JobProbe, run_state
from benchmark.sweep.spec import load_sweep
from tests.faults.test_concurrent_sweeps import start_sweep

pytestmark = pytest.mark.slow


def sweep_file(tmp_path: Path, seeds: list[int], epochs: int) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: sig
        grid: {{seed: {seeds}}}
        fixed: {{dataset: digits, batch_size: 64, epochs: {epochs}, checkpoint_every: 100,
                 method_args: {{proj_hidden_dim: 64, proj_output_dim: 16}}}}
        resources: {{cpus: 1}}
        wandb: {{mode: disabled}}
    """)
    )
    return path


def processes_of(folder: Path) -> list[int]:
    """Live processes whose command line names the sweep's folder (job controllers and runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(folder).encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_stopping_the_sweep_stops_its_runs_at_a_checkpoint(tmp_path, how):
    path = sweep_file(tmp_path, [0, 1, 2], epochs=16)
    results = tmp_path / "r"
    runs = [RunDir(results / "sig" / cell.run_id) for cell in expand(load_sweep(path)).cells]
    log = tmp_path / "sweep.log"
    sweep = start_sweep(path, results, log, parallel=2)  # Ctrl-C keeps its default action there
    wait_for(lambda: sum(run.metrics.is_file() for run in runs) >= 2)
    if how == "ctrl-c":
        os.killpg(sweep.pid, signal.SIGINT)  # what the terminal does: every process of the group
    else:
        sweep.terminate()  # `kill <pid>`: the command alone
    assert sweep.wait(timeout=300) == (130 if how == "ctrl-c" else 143)
    assert processes_of(results / "sig") == []  # no run, no job controller left
    assert "interrupted: run the same command again" in log.read_text()
    states = [run_state(run.path, JobProbe()) for run in runs]
    started = [(run, state) for run, state in zip(runs, states) if state.state != "new"]
    assert len(started) >= 2
    for run, state in started:
        assert state.state == "interrupted" and state.status["note"].startswith("interrupted in epoch"), state
        assert run.load_checkpoint()["position"] is not None  # saved at the step where it stopped
    assert main(["sweep", str(path), "--executor", "local", "--max-parallel", "2", "--results-dir", str(results)]) == 0
    for run in runs:
        assert [m["epoch"] for m in run.read_metrics()] == list(range(1, 17))
        assert run.read_status()["attempt"] <= 2


def test_a_killed_run_is_stale_and_rerun_without_retry_failed(tmp_path, capsys):
    path = sweep_file(tmp_path, [0], epochs=16)
    results = tmp_path / "r"
    [cell] = expand(load_sweep(path)).cells
    run = RunDir(results / "sig" / cell.run_id)
    log = tmp_path / "sweep.log"
    sweep = start_sweep(path, results, log)
    wait_for(lambda: run.metrics.is_file())
    os.kill(run.read_status()["pid"], signal.SIGKILL)  # the run's own process: out of memory, a node lost
    assert sweep.wait(timeout=300) == 1
    text = log.read_text()
    assert "stopped" in text and "stale" in text and "not finished: 1 stale" in text and " failed " not in text
    assert run.read_status()["state"] == "running" and run_state(run.path, JobProbe()).state == "stale"
    assert main(["sweep", str(path), "--executor", "local", "--results-dir", str(results)]) == 0
    assert run.read_status()["state"] == "done" and run.read_status()["attempt"] == 2
