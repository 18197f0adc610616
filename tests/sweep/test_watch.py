"""`gpsbench status --watch`: the table again until the sweep has finished, printed only when it changed
off a terminal, redrawn on one; Ctrl-C stops watching; runs that no job will finish end it too."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.manifest import MANIFEST
from benchmark.rundir import atomic_write_json
from benchmark.sweep import watch as watching
from benchmark.sweep.executors import mark_submitted
from benchmark.sweep.launch import manifest
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep
from tests.conftest import REPO

EPOCH_LINE = re.compile(
    r"^run ([0-9a-f]{12}) epoch (\d)/2 loss \d+\.\d{4} lr \S+ [\d,]+ img/s eta \d+:\d\d:\d\d$", re.M
)


def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: watched
            grid: {seed: [0, 1]}
            fixed: {dataset: digits, method: simclr, epochs: 2, batch_size: 256,
                    method_args: {proj_hidden_dim: 128, proj_output_dim: 32}}
            resources: {cpus: 1, timeout_min: 30}
            wandb: {mode: disabled}
            """
        )
    )
    return path


def planned(tmp_path: Path) -> Path:
    """The sweep folder as `gpsbench sweep` leaves it before any run starts: its sweep.json."""
    path = sweep_file(tmp_path)
    folder = tmp_path / "results" / "watched"
    atomic_write_json(folder / MANIFEST, manifest(expand(load_sweep(path)), path))
    return folder


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.slow
def test_watch_follows_a_local_sweep_until_every_run_is_done(tmp_path, capsys):
    """A real local sweep (submitit jobs, one at a time) in another process; the watcher prints each
    new state of the table once and returns 0 when it sees both runs done. The jobs' own logs hold
    one line per epoch."""
    path, results = sweep_file(tmp_path), tmp_path / "results"
    log = tmp_path / "sweep.log"
    sweep = subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", "sweep", str(path), "--max-parallel", "1"]
        + ["--results-dir", str(results)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, "GPSBENCH_DATA": str(tmp_path / "data"), "WANDB_MODE": "disabled"},
    )
    try:
        folder = results / "watched"
        while not (folder / MANIFEST).is_file():
            assert sweep.poll() is None, log.read_text()
            time.sleep(0.2)
        assert main(["status", str(folder), "--watch", "0.2"]) == 0
    finally:
        sweep.wait(timeout=600)
    assert sweep.returncode == 0, log.read_text()
    out = capsys.readouterr().out
    blocks = [block.split("\n", 1)[1] for block in out.split("--- ")[1:]]
    assert len(blocks) >= 3 and all(a != b for a, b in zip(blocks, blocks[1:]))  # printed only when changed
    assert re.search(r"\b(new|queued|running)\b", blocks[0]) and "2 runs: 2 done" in blocks[-1]
    assert out.rstrip().endswith("all 2 runs finished") and "\x1b" not in out
    job_logs = "".join(p.read_text() for p in (folder / ".submitit").glob("*_log.err"))
    epochs = EPOCH_LINE.findall(job_logs)
    run_ids = {cell.run_id for cell in expand(load_sweep(path)).cells}
    assert sorted(epochs) == sorted((run_id, e) for run_id in run_ids for e in "12"), job_logs[-3000:]


def test_ctrl_c_stops_watching_on_a_terminal(tmp_path):
    """Runs nobody started keep it watching (a hint says so); Ctrl-C ends it cleanly with 130."""
    folder = planned(tmp_path)
    screen = Terminal()
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        assert watching.watch(folder, 0.1, stream=screen) == 130
    finally:
        timer.cancel()
    text = screen.getvalue()
    assert text.count(watching.CLEAR) >= 2  # redrawn in place on every refresh
    assert "2 runs: 2 new" in text and "no job runs the new runs yet" in text
    assert text.endswith("stopped watching; the runs go on\n")


def test_watch_ends_when_no_job_is_left_to_finish_a_run(tmp_path, monkeypatch):
    """A run whose job is gone (pending, its process exited) will not finish by itself: watching ends
    with 1 once that is seen twice, CONFIRM_S apart."""
    monkeypatch.setattr(watching, "CONFIRM_S", 0.3)
    folder = planned(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    for cell in expand(load_sweep(tmp_path / "sweep.yaml")).cells:
        mark_submitted(folder / cell.run_id, "local", None, pid=gone.pid)  # as the local executor does
    out = io.StringIO()
    assert watching.watch(folder, 0.1, stream=out) == 1
    text = out.getvalue()
    assert text.count("--- ") == 1 and "2 runs: 2 interrupted" in text
    assert text.rstrip().endswith("no job is left to finish 2 interrupted: run the sweep again to resume them")


def test_watch_interval_must_be_positive(tmp_path, capsys):
    folder = planned(tmp_path)
    assert main(["status", str(folder), "--watch", "0"]) == 2
    assert "--watch takes a refresh interval in seconds > 0, got 0.0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "states, outcome",
    [
        (["done", "done"], "finished"),
        (["done", "failed"], "finished"),
        (["done", "running"], None),
        (["done", "new"], None),
        (["done", "unknown"], None),
        (["done", "stale"], "abandoned"),
        (["corrupt", "interrupted"], "abandoned"),
    ],
)
def test_verdict(states, outcome):
    assert watching.verdict(pd.DataFrame({"_state": states})) == outcome
