"""Whose run a folder holds is told from every file that names a run, not from status.json alone: a
finished run whose status.json is missing or damaged, a user's own folder and a folder whose config
names another run are never written over without --restart (another run_id: never at all)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.ownership import ForeignRun
from benchmark.rundir import RunDir
from benchmark.train import train_run
from tests.conftest import small_method_args


def config(**values) -> RunConfig:
    heads = small_method_args("simclr", 64, proj_output_dim=16)
    fixed = {"dataset": "digits", "batch_size": 128, "progress": False, "method_args": heads}
    return RunConfig.from_dict({**fixed, **values})


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def done(tmp_path_factory, digits) -> Path:
    path = tmp_path_factory.mktemp("done") / "run"
    train_run(config(epochs=1), path, data=digits)
    return path


def copy(done: Path, tmp_path: Path) -> RunDir:
    shutil.copytree(done, tmp_path / "run")
    return RunDir(tmp_path / "run")


def files(run: RunDir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}


DAMAGED_STATUS = {
    "missing": lambda run: run.status.unlink(),
    "damaged": lambda run: run.status.write_text('{"state": "do'),
}


@pytest.mark.parametrize("status", DAMAGED_STATUS)
def test_a_finished_run_without_a_readable_status_is_not_overwritten_by_another_config(done, tmp_path, digits, status):
    run = copy(done, tmp_path)
    DAMAGED_STATUS[status](run)
    before = files(run)
    for restart in (False, True):  # its config.json and result.json name another run: refused either way
        with pytest.raises(ForeignRun, match=f"holds run {config(epochs=1).run_id}"):
            train_run(config(epochs=2), run.path, data=digits, restart=restart)
    assert files(run) == before


def test_a_users_own_folder_is_written_only_with_restart(tmp_path, digits):
    run = RunDir(tmp_path / "mine")
    run.path.mkdir()
    run.config.write_text('{"my": "own config"}\n')
    run.result.write_text('{"my": "own result", "epochs": 99}\n')
    run.metrics.write_text('{"epoch": 1, "note": "my own log"}\n')
    before = files(run)
    with pytest.raises(ForeignRun, match="config.json is no config of this suite.*--restart replaces it"):
        train_run(config(epochs=1), run.path, data=digits)
    assert files(run) == before
    train_run(config(epochs=1), run.path, data=digits, restart=True)
    assert run.read_result()["run_id"] == config(epochs=1).run_id


def test_run_files_that_name_no_run_are_written_only_with_restart(done, tmp_path, digits):
    run = copy(done, tmp_path)
    run.status.unlink()
    run.config.unlink()
    run.result.unlink()  # metrics.jsonl and checkpoint.pt: nothing says whose they are
    before = files(run)
    with pytest.raises(ForeignRun, match="status.json is missing and nothing names run"):
        train_run(config(epochs=1), run.path, data=digits, resume=True)
    assert files(run) == before


def test_a_config_that_names_another_run_is_refused_whatever_status_json_says(done, tmp_path, digits):
    run = copy(done, tmp_path)
    edited = {**json.loads(run.config.read_text()), "seed": 7}
    run.config.write_text(json.dumps(edited))
    before = files(run)
    with pytest.raises(ForeignRun, match=f"holds run {RunConfig.from_dict(edited).run_id} \\(config.json\\)"):
        train_run(config(epochs=1), run.path, data=digits)
    assert files(run) == before


def test_this_runs_files_without_a_status_are_its_own_and_repaired(done, tmp_path, digits):
    run = copy(done, tmp_path)
    run.status.unlink()
    result = run.result.read_bytes()
    assert train_run(config(epochs=1), run.path, data=digits)["run_id"] == config(epochs=1).run_id
    assert run.result.read_bytes() == result and run.read_status()["state"] == "done"
