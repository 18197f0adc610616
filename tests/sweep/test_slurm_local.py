"""The localhost SLURM's scripts when things go wrong: `up.sh` checks its ports before it starts
anything and names a taken one in one line (a plain listener, another local cluster, which it leaves
alone); a failure after it started daemons stops exactly those; `down.sh` also ends the jobs' step
processes, which outlive slurmd; `gpsbench` against a cluster whose controller is gone says so in one
line (`sweep --executor slurm`) or in the run's message (`status`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from tests.conftest import REPO
from tests.sweep.test_slurm_cluster import _free_port_pair

UP, DOWN = REPO / "slurm/local/up.sh", REPO / "slurm/local/down.sh"
DAEMONS = ("munged", "slurmctld", "slurmd")

pytestmark = pytest.mark.slurm  # it starts and stops a localhost SLURM
needs_slurm = pytest.mark.skipif(
    not shutil.which("slurmctld") or not shutil.which("munged"),
    reason="slurm-wlm and munge are not installed (slurm/local/up.sh installs them where apt-get may)",
)


def up(folder: Path, port: int, **env: str) -> subprocess.CompletedProcess:
    variables = {**os.environ, "SLURM_LOCAL_PORT": str(port), **env}
    return subprocess.run(["bash", str(UP), str(folder)], capture_output=True, text=True, env=variables, timeout=300)


def down(folder: Path) -> None:
    subprocess.run(["bash", str(DOWN), str(folder)], capture_output=True, timeout=300)


def alive_daemons(folder: Path) -> list[str]:
    alive = []
    for name in DAEMONS:
        pidfile = folder / "run" / f"{name}.pid"
        try:
            os.kill(int(pidfile.read_text()), 0)
        except (OSError, ValueError):
            continue
        alive.append(name)
    return alive


def steps(folder: Path) -> list[int]:
    """slurmstepd processes of the cluster under `folder` (they work in its log folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "comm").read_text().strip() == "slurmstepd" and os.readlink(proc / "cwd") == str(folder / "log"):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def with_children(pids: list[int]) -> list[int]:
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        if proc.name.isdigit():
            parents[int(proc.name)] = int(status.split("PPid:")[1].split()[0])
    found, added = set(pids), True
    while added:
        new = {pid for pid, parent in parents.items() if parent in found} - found
        found |= new
        added = bool(new)
    return sorted(found)


def lives(pid: int) -> bool:
    """The process exists and is not a zombie (a container's init may never reap an orphan)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def cluster(tmp_path):
    """A running localhost cluster on free ports; stopped afterwards."""
    folder, port = tmp_path / "first", _free_port_pair()
    started = up(folder, port)
    if started.returncode:
        pytest.skip(f"cannot start the localhost SLURM: {started.stderr.strip()[-300:]}")
    yield folder, port
    down(folder)


@needs_slurm
def test_a_port_a_plain_listener_holds_is_named_in_one_line_and_nothing_starts(tmp_path):
    port = _free_port_pair()
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", port))
        listener.listen()
        started = time.monotonic()
        result = up(tmp_path / "c", port)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and time.monotonic() - started < 30, result.stderr
    assert f"port {port} (for slurmctld) is taken by python" in lines[0] and "SLURM_LOCAL_PORT" in lines[0]
    assert alive_daemons(tmp_path / "c") == []


@needs_slurm
def test_the_ports_of_another_local_cluster_are_named_and_that_cluster_left_alone(cluster, tmp_path):
    first, port = cluster
    log = (first / "log" / "slurmctld.log").read_text()
    result = up(tmp_path / "second", port)
    lines = result.stderr.strip().splitlines()
    assert (
        result.returncode == 1 and len(lines) == 1 and f"port {port} (for slurmctld) is taken by slurmctld" in lines[0]
    )
    assert alive_daemons(tmp_path / "second") == [] and alive_daemons(first) == list(DAEMONS)
    written = (first / "log" / "slurmctld.log").read_text()[len(log) :]
    assert "auth" not in written.lower() and "credential" not in written.lower()


@needs_slurm
def test_a_failure_after_it_started_daemons_stops_exactly_those(cluster, tmp_path):
    first, _ = cluster
    result = up(tmp_path / "second", _free_port_pair(), SLURM_LOCAL_WAIT_S="0")  # gives the node no time
    assert result.returncode == 1
    assert "did not become idle within 0 s" in result.stderr
    assert "stopped the daemons this call started: munged slurmctld slurmd" in result.stderr
    assert alive_daemons(tmp_path / "second") == [] and alive_daemons(first) == list(DAEMONS)


@needs_slurm
def test_down_ends_the_steps_of_running_jobs_even_with_the_controller_gone(cluster):
    first, _ = cluster
    env = {**os.environ, "SLURM_CONF": str(first / "etc/slurm.conf"), "PATH": f"{first / 'bin'}:{os.environ['PATH']}"}
    subprocess.run(["sbatch", "-o", "/dev/null", "--wrap", "srun sleep 600"], env=env, check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while len(steps(first)) < 2 and time.monotonic() < deadline:  # the batch step and srun's step
        time.sleep(0.5)
    running = with_children(steps(first))  # the step daemons, the batch script, srun, sleep
    assert len(running) >= 4, "the job's steps did not start"
    os.kill(int((first / "run" / "slurmctld.pid").read_text()), 15)  # no controller left to cancel the job
    down(first)
    assert steps(first) == [] and alive_daemons(first) == []
    assert not [pid for pid in running if lives(pid)]


@needs_slurm
def test_a_sweep_on_a_slurm_whose_controller_is_gone_is_one_line(cluster, tmp_path, monkeypatch, capfd):
    first, _ = cluster
    down(first)  # sbatch and its config remain; nothing answers
    monkeypatch.setenv("SLURM_CONF", str(first / "etc/slurm.conf"))
    monkeypatch.setenv("PATH", f"{first / 'bin'}:{os.environ['PATH']}")
    sweep = tmp_path / "s.yaml"
    sweep.write_text("name: s\ngrid: {seed: [0]}\nfixed: {dataset: digits, epochs: 1}\n")
    profile = str(REPO / "slurm/profiles/local.yaml")
    code = main(
        ["sweep", str(sweep), "--executor", "slurm", "--profile", profile, "--results-dir", str(tmp_path / "r")]
    )
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "no SLURM controller answers" in lines[0], lines
    assert not (tmp_path / "r").exists()


def test_status_says_why_a_slurm_run_is_unknown(tmp_path, monkeypatch, capsys):
    """A run submitted to SLURM, asked about where the cluster does not answer: `unknown`, and why."""
    run = tmp_path / "s" / "0123456789ab"
    run.mkdir(parents=True)
    record = {"state": "pending", "attempt": 0, "executor": "slurm", "job_id": "77", "host": socket.gethostname()}
    (run / "status.json").write_text(json.dumps(record))
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nowhere.conf"))
    assert main(["status", str(tmp_path / "s")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "0123456789ab" in line)
    assert " unknown " in row and "SLURM job 77: cannot ask the cluster" in row
