"""Invocations of `gpsbench sweep` on one folder at once: each run trained exactly once (one attempt,
every epoch logged once), no finished result rewritten, no run reported failed, and `--max-parallel`
counting the runs another invocation left running."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmark.rundir import RunDir
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep
from tests.conftest import REPO

SWEEP = """
    name: {name}
    grid: {{seed: {seeds}}}
    fixed: {{dataset: digits, batch_size: 128, epochs: {epochs}, checkpoint_every: 1,
             method_args: {{proj_hidden_dim: 64, proj_output_dim: 16}}}}
    resources: {{cpus: 1}}
    wandb: {{mode: disabled}}
"""
pytestmark = pytest.mark.slow


def start_sweep(path: Path, results: Path, log: Path, parallel: int | None = None) -> subprocess.Popen:
    """`gpsbench sweep` as a terminal starts it: its own process group (session), output to `log`."""
    slots = [] if parallel is None else ["--max-parallel", str(parallel)]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmark.cli",
            "sweep",
            str(path),
            "--executor",
            "local",
            *slots,
            "--results-dir",
            str(results),
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
        env={**os.environ, "GPSBENCH_DATA": str(results.parent / "data"), "WANDB_MODE": "disabled"},
    )


def runs_of(path: Path, results: Path) -> list[RunDir]:
    plan = expand(load_sweep(path))
    return [RunDir(results / plan.spec.name / cell.run_id) for cell in plan.cells]


def test_two_sweeps_at_once_on_one_folder_train_each_run_once(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(SWEEP.format(name="twice", seeds=[0, 1, 2, 3], epochs=3)))
    results = tmp_path / "r"
    runs = runs_of(path, results)
    sweeps = [start_sweep(path, results, tmp_path / f"{i}.log", parallel=2) for i in range(2)]
    first_seen: dict[Path, int] = {}
    while any(sweep.poll() is None for sweep in sweeps):
        for run in runs:
            if run.result.is_file() and run.path not in first_seen:
                first_seen[run.path] = run.result.stat().st_mtime_ns
        time.sleep(0.2)
    logs = [(tmp_path / f"{i}.log").read_text() for i in range(2)]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], logs
    assert not any(" failed " in log for log in logs), logs
    for run in runs:
        status = run.read_status()
        assert status["state"] == "done" and status["attempt"] == 1, status
        assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3]
        assert run.result.stat().st_mtime_ns == first_seen.get(run.path, run.result.stat().st_mtime_ns)


def test_max_parallel_counts_a_run_an_earlier_invocation_left_running(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(SWEEP.format(name="slots", seeds=[0, 1], epochs=10)))
    results = tmp_path / "r"
    first, second = runs_of(path, results)
    earlier = start_sweep(path, results, tmp_path / "1.log", parallel=1)
    deadline = time.time() + 300
    while not (first.metrics.is_file() or second.metrics.is_file()):
        assert time.time() < deadline and earlier.poll() is None
        time.sleep(0.2)
    earlier.kill()  # kill -9 of the command: its run goes on in the background
    earlier.wait()
    orphan, other = (first, second) if first.metrics.is_file() else (second, first)
    later = start_sweep(path, results, tmp_path / "2.log", parallel=1)
    assert later.wait(timeout=600) == 0, (tmp_path / "2.log").read_text()
    assert orphan.read_status()["state"] == other.read_status()["state"] == "done"
    # the second run began (its config.json is written as it starts) only after the orphan's result
    assert other.config.stat().st_mtime_ns >= orphan.result.stat().st_mtime_ns
    assert "waits" in (tmp_path / "2.log").read_text()
