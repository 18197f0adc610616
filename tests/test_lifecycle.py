"""A run's status lifecycle (benchmark/lifecycle.py) and its typed result (benchmark/run_result.py), on a
real run directory under a real claim: how each way an attempt ends is recorded, and result.json's keys."""

from __future__ import annotations

import pytest

from benchmark.attempt import Attempt
from benchmark.claim import holder
from benchmark.config import RunConfig
from benchmark.lifecycle import RunInterrupted, RunLifecycle
from benchmark.run_result import RunResult
from benchmark.rundir import RESULT_KEYS, RunDir, read_json
from benchmark.runstate import RunState

CONFIG = RunConfig.from_dict({"dataset": "digits", "epochs": 1, "progress": False})
SCORES = {"knn_acc": 0.9, "knn200_acc": 0.88, "val_knn_acc": 0.91, "linear_acc": 0.93, "val_linear_acc": 0.92}


def claimed(tmp_path) -> Attempt:
    attempt = Attempt(RunDir(tmp_path / "run"), CONFIG, CONFIG.run_id, resume=False)
    assert attempt.take() is None
    return attempt


def result(**changes) -> RunResult:
    values = dict(
        run_id=CONFIG.run_id,
        method="simclr",
        aug="weak",
        dataset="digits",
        prior="pixel",
        seed=0,
        epochs=1,
        k=5,
        scores=SCORES,
        prior_nn_agreement=0.97,
        sampling="knn-uniform",
        gps={"prior": "pixel", "table_method": "exact-faiss", "tau": None},
        train_seconds=2.0,
        images_per_s=100.0,
        eval_seconds=0.5,
        backbone="resnet18",
        num_train=1000,
        device="cpu",
        world_size=1,
    )
    return RunResult(**{**values, **changes})


def test_result_dict_has_the_contract_keys_in_the_files_order():
    keys = list(result().as_dict())
    assert set(RESULT_KEYS) <= set(keys)
    assert keys[:8] == ["run_id", "method", "aug", "dataset", "prior", "seed", "epochs", "k"]
    assert keys[8:13] == list(SCORES)
    assert keys[13:17] == ["prior_nn_agreement", "sampling", "gps_table_method", "gps_tau"]  # gps_prior: `prior`
    cost = ["train_seconds", "images_per_s", "eval_seconds", "backbone", "num_train", "device", "world_size"]
    assert keys[17:] == cost


def test_a_finished_block_writes_the_result_then_done_and_releases_the_claim(tmp_path):
    attempt = claimed(tmp_path)
    with RunLifecycle(attempt) as life:
        life.begin(0)
        assert attempt.run.read_status()["state"] == RunState.RUNNING
        life.result = result()
    run = RunDir(tmp_path / "run")
    status = run.read_status()
    assert status["state"] == "done" and status["attempt"] == 1 and status["error"] is None
    assert read_json(run.result) == result().as_dict()
    assert holder(run.path) is None


def test_an_error_fails_the_run_with_its_message_and_traceback(tmp_path):
    attempt = claimed(tmp_path)
    with pytest.raises(ValueError, match="the loss is a teapot"):
        with RunLifecycle(attempt) as life:
            life.begin(0)
            raise ValueError("the loss is a teapot")
    run = RunDir(tmp_path / "run")
    status = run.read_status()
    assert status["state"] == "failed" and status["error"] == "ValueError: the loss is a teapot"
    assert "test_lifecycle.py" in status["traceback"] and "raise ValueError" in status["traceback"]
    assert not run.result.exists() and holder(run.path) is None


@pytest.mark.parametrize(
    "stop, note",
    [
        (RunInterrupted("interrupted in epoch 1 after step 3/9; checkpoint saved"), "after step 3/9"),
        (KeyboardInterrupt(), "interrupted (Ctrl-C): rerunning resumes it"),
    ],
)
def test_a_stop_leaves_the_run_pending_to_resume(tmp_path, stop, note):
    attempt = claimed(tmp_path)
    with pytest.raises(type(stop)):
        with RunLifecycle(attempt) as life:
            life.begin(0)
            raise stop
    status = RunDir(tmp_path / "run").read_status()
    assert status["state"] == "pending" and status["error"] is None and note in status["note"]
    assert holder(tmp_path / "run") is None


def test_a_result_that_cannot_be_written_fails_the_run(tmp_path):
    attempt = claimed(tmp_path)
    with pytest.raises(ValueError, match="result lacks keys"):
        with RunLifecycle(attempt) as life:
            life.begin(0)
            life.result = result(scores={})  # no accuracies: result.json would break the contract
    run = RunDir(tmp_path / "run")
    assert run.read_status()["state"] == "failed" and not run.result.exists()


def test_a_block_without_a_result_records_nothing_more(tmp_path):
    """A process other than rank 0 trains and leaves: the run stays `running` for rank 0 to end."""
    attempt = claimed(tmp_path)
    with RunLifecycle(attempt) as life:
        life.begin(0)
    assert RunDir(tmp_path / "run").read_status()["state"] == "running"
    assert holder(tmp_path / "run") is None
