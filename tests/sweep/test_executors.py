"""Every executor of the registry starts a tuning study's workers too, so `gpsbench tune` picks its
executor by name from the same registry as `gpsbench sweep` (real submitit jobs for `local`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cloudpickle
import pytest

from benchmark.cli import main
from benchmark.sweep.executors import EXECUTORS, ExecutorOptions, Workers
from benchmark.sweep.spec import Resources

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers' processes cannot import this file


class Reports:
    """A stand-in study worker: writes which worker it is and how it was started, in its own process."""

    def __init__(self, folder: Path, threads: int | None, executor: str, index: int):
        self.folder, self.threads, self.executor, self.index = folder, threads, executor, index

    def __call__(self) -> int:
        record = {"threads": self.threads, "executor": self.executor, "pid": os.getpid()}
        (self.folder / f"worker{self.index}.json").write_text(json.dumps(record))
        return self.index


def workers(tmp_path: Path, count: int) -> Workers:
    return Workers(
        lambda threads, executor, index: Reports(tmp_path, threads, executor, index),
        count,
        tmp_path / ".submitit",
        Resources(timeout_min=5),
        trials=4,
    )


def test_every_executor_can_start_workers():
    for name in EXECUTORS.names():
        assert callable(getattr(EXECUTORS.get(name), "start_workers", None)), name


def test_debug_runs_one_worker_here_to_the_end(tmp_path):
    executor = EXECUTORS.get("debug")(ExecutorOptions(), Resources())
    assert executor.start_workers(workers(tmp_path, 3)) == []
    assert sorted(p.name for p in tmp_path.glob("worker*.json")) == ["worker0.json"]
    record = json.loads((tmp_path / "worker0.json").read_text())
    assert record == {"threads": None, "executor": "debug", "pid": os.getpid()}


@pytest.mark.slow
def test_local_starts_each_worker_in_its_own_process_sharing_the_cores(tmp_path):
    executor = EXECUTORS.get("local")(ExecutorOptions(), Resources())
    jobs = executor.start_workers(workers(tmp_path, 2))
    assert sorted(job.result() for job in jobs) == [0, 1]
    records = [json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2)]
    assert {r["executor"] for r in records} == {"local"}
    assert all(r["threads"] == max(1, (os.cpu_count() or 1) // 2) for r in records)
    assert len({r["pid"] for r in records} | {os.getpid()}) == 3


def test_tune_names_the_executors_of_the_registry_on_an_unknown_one(tmp_path, capsys):
    path = tmp_path / "tune.yaml"
    path.write_text("name: t\nfixed: {dataset: digits}\nspace: {lr: {type: float, low: 0.1, high: 1}}\n")
    with pytest.raises(SystemExit) as exit:
        main(["tune", str(path), "--executor", "kubernetes"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "'kubernetes'" in err and all(name in err for name in EXECUTORS.names())
