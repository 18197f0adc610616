"""A full disk and a file-size limit during training: the run ends with one line naming the file and
what it needed, its status says failed, no file is left half-written, and once there is room again
`--resume` continues from the last checkpoint without repeating an epoch. Also: a torn last line of
metrics.jsonl (a kill mid-write) is dropped by every reader, and files follow the umask."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.rundir import RunDir
from tests.conftest import REPO
from tests.faults.test_bad_input import SMALL
from tests.sweep.test_run_views import dead_pid

TRAIN = [sys.executable, "-m", "benchmark.cli", "train", *SMALL, "--set", "checkpoint_every=1"]


def gpsbench(args: list[str], tmp_path: Path, shell_prefix: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "GPSBENCH_DATA": str(tmp_path / "data"), "WANDB_MODE": "disabled"}
    command = [*TRAIN, *args]
    if shell_prefix:
        command = ["bash", "-c", f'{shell_prefix} && exec "$@"', "bash", *command]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs, where this machine lets a test mount one (root in a container usually may)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the file-size limit test "
            f"covers a write that runs out of room"
        )
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_disk_full_mid_training_fails_in_one_line_and_resumes_when_space_is_freed(tmp_path, small_disk):
    reference = gpsbench(["--epochs", "1", "--out", str(tmp_path / "ref")], tmp_path)
    assert reference.returncode == 0, reference.stderr
    checkpoint = (tmp_path / "ref" / "checkpoint.pt").stat().st_size
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # leave room for one checkpoint and a half: the second cannot be written
        handle.write(b"\0" * (shutil.disk_usage(small_disk).free - checkpoint * 3 // 2 - (64 << 10)))
    run = RunDir(small_disk / "run")
    full = gpsbench(["--epochs", "4", "--out", str(run.path)], tmp_path)
    lines = full.stderr.strip().splitlines()
    assert full.returncode == 1 and "Traceback" not in full.stderr
    assert [line for line in lines if line.startswith("gpsbench:")] == [lines[-1]]
    assert "no space left on the device writing" in lines[-1] and "checkpoint.pt" in lines[-1]
    assert "MB free" in lines[-1]
    status = run.read_status()
    assert status["state"] == "failed" and status["error"].startswith("StorageError: no space left")
    log = run.metrics_log()
    assert not log.torn_tail and not log.bad_lines and log.epochs == [1, 2]
    assert run.load_checkpoint()["epoch"] == 1 and not list(run.path.glob(".*.tmp"))

    filler.unlink()
    resumed = gpsbench(["--epochs", "4", "--resume", "--out", str(run.path)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1" in resumed.stderr
    assert run.read_status()["state"] == "done" and run.read_status()["attempt"] == 2
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3, 4]


def test_a_file_size_limit_fails_in_one_line_naming_the_limit(tmp_path):
    run = RunDir(tmp_path / "run")
    limited = gpsbench(["--epochs", "2", "--out", str(run.path)], tmp_path, shell_prefix="ulimit -f 1024")
    lines = limited.stderr.strip().splitlines()
    assert limited.returncode == 1 and "Traceback" not in limited.stderr, limited.stderr
    assert "file size limit reached writing" in lines[-1] and "checkpoint.pt" in lines[-1]
    assert "the limit (ulimit -f) is 1.0 MB" in lines[-1]
    assert run.read_status()["state"] == "failed" and run.metrics_log().epochs == [1]
    assert not run.checkpoint.exists() and not list(run.path.glob(".*.tmp"))


def test_an_append_that_hits_the_limit_leaves_no_torn_line(tmp_path):
    code = (
        "import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "from benchmark.errors import StorageError\nfrom benchmark.fileio import append_line\n"
        "try:\n    [append_line(sys.argv[1], 'x' * 299) for _ in range(10)]\n"
        "except StorageError as err:\n    print(err)\n"
    )
    done = subprocess.run(
        ["bash", "-c", f'ulimit -f 1 && exec {sys.executable} -c "$0" "$1"', code, str(tmp_path / "m.jsonl")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert "file size limit reached" in done.stdout, done
    assert (tmp_path / "m.jsonl").read_text() == ("x" * 299 + "\n") * 3  # 1,024 bytes hold three whole lines


def test_a_torn_last_line_is_dropped_by_status_and_resume(tmp_path, capsys):
    from benchmark.cli import main
    from benchmark.config import RunConfig
    from benchmark.train import RunInterrupted, train_run

    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "batch_size": 128,
            "epochs": 3,
            "checkpoint_every": 1,
            "progress": False,
            "method_args": {"proj_hidden_dim": 64, "proj_output_dim": 16},
        }
    )
    run = RunDir(tmp_path / "sweep" / config.run_id)
    polls = iter(range(1000))
    with pytest.raises(RunInterrupted):
        train_run(config, run.path, interrupt=lambda: next(polls) == 12)  # 10 steps an epoch: in epoch 2
    with open(run.metrics, "a") as handle:
        handle.write('{"epoch": 2, "loss": 4.1')  # what a kill in the middle of a write leaves
    run.write_status("running", pid=dead_pid())  # and its process gone
    assert main(["status", str(tmp_path / "sweep")]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert " stale " in row and " 1/3 " in row
    assert train_run(config, run.path, resume=True)["epochs"] == 3
    assert [m["epoch"] for m in run.read_metrics()] == [1, 2, 3] and not run.metrics_log().torn_tail


def test_files_get_the_mode_the_umask_gives(tmp_path):
    code = (
        "import sys, torch\nfrom benchmark.claim import claim\nfrom benchmark.rundir import RunDir\n"
        "run = RunDir(sys.argv[1]); claim(run.path)\nrun.write_status('running')\n"
        "run.append_metrics({'epoch': 1})\nrun.save_checkpoint({'w': torch.zeros(2)})\n"
    )
    subprocess.run(
        ["bash", "-c", f'umask 002 && exec {sys.executable} -c "$0" "$1"', code, str(tmp_path / "run")],
        check=True,
        cwd=REPO,
    )
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "run").iterdir()}
    assert modes == {
        "claim.1.json": "0o664",
        "status.json": "0o664",
        "metrics.jsonl": "0o664",
        "checkpoint.pt": "0o664",
    }


def test_a_results_folder_that_cannot_be_written_is_one_line(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (as root, permissions alone do not stop a write)")
    try:
        refused = gpsbench(["--epochs", "1", "--out", str(folder / "run")], tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        f"gpsbench: error: cannot write {folder / 'run'}: Read-only file system"
    ]


def test_an_export_onto_a_full_disk_is_one_line_and_leaves_no_file(tmp_path, small_disk):
    """The backbone is serialised in memory, then written atomically: the write that finds no room
    names the file and the size it needed, and no partial file stays on the disk."""
    assert gpsbench(["--epochs", "1", "--out", str(tmp_path / "run")], tmp_path).returncode == 0
    with open(small_disk / "filler", "wb") as handle:
        handle.write(b"\0" * (shutil.disk_usage(small_disk).free - (4 << 10)))
    out = small_disk / "backbone.safetensors"
    export = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "export", str(tmp_path / "run"), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "GPSBENCH_DATA": str(tmp_path / "data")},
        timeout=600,
    )
    lines = export.stderr.strip().splitlines()
    assert export.returncode == 1 and len(lines) == 1 and "Traceback" not in export.stderr, export.stderr
    assert "no space left on the device writing" in lines[0] and "backbone.safetensors" in lines[0]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
