"""Sweeps on a real SLURM: the one-node cluster of slurm/local/up.sh (started by .ci/run, or here if
it is not running), job arrays through submitit, a failing cell, `gpsbench status` while jobs run and
after, and a preempted run that checkpoints, requeues and resumes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.rundir import RunDir, read_json
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep
from benchmark.tracking import wandb_run_id
from tests.conftest import REPO, resource

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory):
    """SLURM_CONF and PATH of a running localhost cluster: $GPSBENCH_SLURM_DIR (.ci/run starts one),
    else one started here under a temporary folder and stopped afterwards."""
    given = resource("GPSBENCH_SLURM_DIR")
    folder = Path(given) if given else tmp_path_factory.mktemp("slurm")
    env = {**os.environ}
    if not given:
        env["SLURM_LOCAL_PORT"] = str(_free_port_pair())
    up = subprocess.run(
        [str(REPO / "slurm/local/up.sh"), str(folder)], capture_output=True, text=True, env=env, timeout=600
    )
    if up.returncode != 0:
        pytest.skip(
            f"cannot start the localhost SLURM (slurm/local/up.sh exit {up.returncode}): "
            f"{(up.stderr or up.stdout).strip()[-400:]}"
        )
    yield {"SLURM_CONF": str(folder / "etc/slurm.conf"), "PATH": f"{folder / 'bin'}:{os.environ['PATH']}"}
    if not given:
        subprocess.run([str(REPO / "slurm/local/down.sh"), str(folder)], check=False)


@pytest.fixture
def on_cluster(slurm_env, monkeypatch, tmp_path):
    for key, value in slurm_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(REPO)
    return slurm_env


def _sweep(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _wait(condition, timeout: float = 600.0, poll: float = 1.0):
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.time() < deadline, "timed out waiting on the cluster"
        time.sleep(poll)


def test_sweep_runs_as_a_slurm_array_with_a_failing_cell(on_cluster, tmp_path, capsys):
    path = _sweep(
        tmp_path,
        """
        name: onslurm
        grid: {method: [simclr, byol], seed: [0, 1, 2]}
        fixed: {dataset: digits, epochs: 3, batch_size: 128,
                method_args: {proj_hidden_dim: 128, proj_output_dim: 32}}
        per:
          method: {byol: {method_args: {pred_hidden_dim: 128}}}
          seed: {2: {optimizer: sgd, lr: 1.0e+30}}
        exclude: [{method: byol, seed: 2}]
        resources: {cpus: 1, mem_gb: 2, timeout_min: 20}
        wandb: {mode: offline}
    """,
    )
    results = tmp_path / "r"
    started = time.time()
    assert (
        main(
            [
                "sweep",
                str(path),
                "--executor",
                "slurm",
                "--profile",
                "slurm/profiles/local.yaml",
                "--results-dir",
                str(results),
            ]
        )
        == 0
    )
    submit_seconds = time.time() - started
    assert "submitted 5 run(s)" in capsys.readouterr().out
    plan = expand(load_sweep(path))
    runs = {cell.label: RunDir(results / "onslurm" / cell.run_id) for cell in plan.cells}
    arrays = {run.read_status()["job_id"].split("_")[0] for run in runs.values()}
    assert len(arrays) == 1  # one job array

    def status_text() -> str:
        assert main(["status", str(results / "onslurm")]) == 0
        return capsys.readouterr().out

    def live_states() -> str | None:
        text = status_text()
        return text if "running (RUNNING)" in text or "queued (PENDING)" in text else None

    assert _wait(live_states, poll=0.2)

    def finished() -> bool:
        return all(run.read_status().get("state") in ("done", "failed") for run in runs.values())

    _wait(finished)
    all_done_seconds = time.time() - started
    with capsys.disabled():
        print(
            f"\nSLURM sweep of 5 runs: submitted in {submit_seconds:.1f} s, all finished {all_done_seconds:.0f} s "
            "after `sweep`"
        )
    failing = runs["method=simclr seed=2"].read_status()
    assert failing["state"] == "failed" and "loss became nan" in failing["error"]
    for label, run in runs.items():
        if label == "method=simclr seed=2":
            continue
        status = run.read_status()
        assert status["state"] == "done" and status["executor"] == "slurm" and status["attempt"] == 1, status
        assert read_json(run.result)["run_id"] == run.path.name
        log = Path(status["log"]).read_text()  # the job's log: one line per epoch
        assert re.findall(rf"^run {run.path.name} epoch (\d)/3 loss ", log, re.M) == ["1", "2", "3"]
        wandb_id = wandb_run_id(run.path, run.path.name)
        assert len(list(run.path.glob(f"wandb/offline-run-*-{wandb_id}/run-{wandb_id}.wandb"))) == 1
    after = status_text()
    assert after.splitlines()[-1] == "5 runs: 4 done, 1 failed"
    assert "(RUNNING)" not in after and "(PENDING)" not in after


def test_preempted_slurm_job_requeues_and_resumes_from_its_checkpoint(on_cluster, tmp_path, capsys):
    body = """
        name: {name}
        grid: {{seed: [0]}}
        fixed: {{dataset: digits, method: simclr, epochs: 6, batch_size: 64, checkpoint_every: 100,
                 method_args: {{proj_hidden_dim: 128, proj_output_dim: 32}}}}
        resources: {{cpus: 1, mem_gb: 2, timeout_min: 20}}
        wandb: {{mode: disabled}}
    """
    args = ["--executor", "slurm", "--profile", "slurm/profiles/local.yaml"]
    preempted = _sweep(tmp_path, body.format(name="preempt"))
    assert main(["sweep", str(preempted), *args, "--results-dir", str(tmp_path / "a")]) == 0
    straight = tmp_path / "straight.yaml"
    straight.write_text(textwrap.dedent(body.format(name="straight")))
    assert main(["sweep", str(straight), *args, "--results-dir", str(tmp_path / "b")]) == 0
    [cell] = expand(load_sweep(preempted)).cells
    run = RunDir(tmp_path / "a" / "preempt" / cell.run_id)
    reference = RunDir(tmp_path / "b" / "straight" / cell.run_id)

    _wait(lambda: len(run.read_metrics()) >= 2, poll=0.2)
    job_id = run.read_status()["job_id"]
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # what SLURM sends before preempting
    _wait(
        lambda: (
            run.read_status().get("state") in ("done", "failed")
            and reference.read_status().get("state") in ("done", "failed")
        )
    )

    status = run.read_status()
    assert status["state"] == "done" and status["attempt"] == 2 and status["job_id"] == job_id
    log = "".join(p.read_text() for p in (tmp_path / "a" / "preempt" / ".submitit").rglob("*.err"))
    assert "this job is preempted" in log and ", step " in log.split("resuming after epoch")[1]
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3, 4, 5, 6]  # none trained twice
    assert [m["loss"] for m in run.read_metrics()] == [m["loss"] for m in reference.read_metrics()]
    result, expected = read_json(run.result), read_json(reference.result)
    assert (result["knn_acc"], result["linear_acc"]) == (expected["knn_acc"], expected["linear_acc"])


def test_run_prior_cell_waits_for_its_source_with_afterany(on_cluster, tmp_path, capsys):
    path = _sweep(
        tmp_path,
        """
        name: staged
        grid: {prior: [none, "run:method=simclr"], method: [simclr]}
        fixed: {dataset: digits, epochs: 2, batch_size: 128, k: 5,
                method_args: {proj_hidden_dim: 128, proj_output_dim: 32}}
        resources: {cpus: 1, mem_gb: 2, timeout_min: 20}
        wandb: {mode: disabled}
    """,
    )
    results = tmp_path / "r"
    assert (
        main(
            [
                "sweep",
                str(path),
                "--executor",
                "slurm",
                "--profile",
                "slurm/profiles/local.yaml",
                "--results-dir",
                str(results),
            ]
        )
        == 0
    )
    source, dependent = expand(load_sweep(path)).cells
    runs = [RunDir(results / "staged" / cell.run_id) for cell in (source, dependent)]
    dependent_job = runs[1].read_status()["job_id"]
    info = subprocess.run(["scontrol", "show", "job", "-o", dependent_job], capture_output=True, text=True).stdout
    assert f"Dependency=afterany:{runs[0].read_status()['job_id'].split('_')[0]}" in info  # a second array
    _wait(lambda: all(run.read_status().get("state") in ("done", "failed") for run in runs))
    assert [run.read_status()["state"] for run in runs] == ["done", "done"]
    result = read_json(runs[1].result)
    assert result["prior"] == f"run:{source.run_id}" and result["prior_nn_agreement"] is not None
    assert read_json(runs[1].config)["prior"] == f"run:{source.run_id}"


def test_tuning_workers_run_as_a_slurm_array(on_cluster, tmp_path, capsys):
    from benchmark.sweep import study as studies
    from benchmark.sweep.tuning import load_tune

    path = _sweep(
        tmp_path,
        """
        name: tune-slurm
        fixed: {dataset: digits, method: simclr, aug: weak, epochs: 2, batch_size: 256,
                method_args: {proj_hidden_dim: 128, proj_output_dim: 32}}
        space: {lr: {type: float, low: 0.05, high: 2.0, log: true}}
        n_trials: 3
        evaluate_every: 1
        pruner: none
        resources: {cpus: 1, mem_gb: 2, timeout_min: 20}
        wandb: {mode: disabled}
    """,
    )
    results = tmp_path / "r"
    args = [
        "tune",
        str(path),
        "--executor",
        "slurm",
        "--profile",
        "slurm/profiles/local.yaml",
        "--workers",
        "2",
        "--results-dir",
        str(results),
    ]
    assert main(args) == 0
    assert "submitted 2 worker(s) as a SLURM array" in capsys.readouterr().out
    spec = load_tune(path)
    _wait(
        lambda: (
            studies.finished(studies.open_study(spec, results / "tune-slurm")) >= 3
            and not subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip()
        )
    )
    study = studies.open_study(spec, results / "tune-slurm")
    workers = {t.user_attrs["worker"]["job_id"] for t in study.get_trials()}
    assert len({job.split("_")[0] for job in workers}) == 1 and all(
        t.user_attrs["worker"]["executor"] == "slurm" for t in study.get_trials()
    )
    assert main(args) == 0  # the budget is spent: the command only reports
    assert "best: trial" in capsys.readouterr().out
