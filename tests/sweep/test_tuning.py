"""Tuning: the search-space file and its errors, the objective (validation only), pruning on the
validation kNN, the journal (resumption, stale trials), export into a sweep, and local workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

from benchmark.cli import main
from benchmark.rundir import RunDir
from benchmark.sweep import study as studies
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep
from benchmark.sweep.tuning import load_tune
from tests.conftest import REPO

TUNE = """
name: t
fixed: {dataset: digits, method: simclr, aug: weak, prior: pixel, epochs: 4, batch_size: 256,
        method_args: {proj_hidden_dim: 128, proj_output_dim: 32}}
space:
  lr: {type: float, low: 0.05, high: 5.0, log: true}
  method_args.temperature: {type: float, low: 0.05, high: 0.5}
  k: {type: int, low: 1, high: 10}
n_trials: 4
evaluate_every: 1
sampler: {name: tpe, seed: 0, n_startup_trials: 2}
pruner: {name: median, n_startup_trials: 1, n_warmup_steps: 1}
wandb: {mode: disabled}
"""


def write(tmp_path: Path, text: str, name: str = "tune.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BAD = [
    ("n_trial: 3\n", ["unknown tuning key 'n_trial'", "did you mean 'n_trials'"]),
    (
        "space: {lr: {type: floaty, low: 0.1, high: 1}}\n",
        ["unknown parameter type 'floaty'", "categorical, float, int"],
    ),
    ("space: {lr: {type: float, low: 1.0, high: 0.1}}\n", ["space.lr: low must be below high"]),
    ("space: {lr: {type: float, low: 0.0, high: 1.0, log: true}}\n", ["a log scale needs low > 0"]),
    ("space: {aug: {type: categorical, choices: []}}\n", ["choices must be a non-empty list"]),
    (
        "space: {aug: {type: categorical, choices: [weak, strongg]}}\n",
        ["space.aug = 'strongg'", "unknown augmentation 'strongg'"],
    ),
    ("space: {lrate: {type: float, low: 0.1, high: 1}}\n", ["unknown config key 'lrate'"]),
    ("space: {k: {type: int, low: 1.5, high: 4}}\n", ["an int parameter needs integer bounds"]),
    ("space: {lr: {type: float, low: 0.1, high: 1, stepp: 2}}\n", ["unknown keys ['stepp']"]),
    (
        "space: {lr: {type: float, low: 0.1, high: 1}}\nobjective: knn_acc\n",
        ["unknown objective 'knn_acc'", "valid: rankme, val_knn_acc, val_linear_acc", "never chooses anything"],
    ),
    ("space: {lr: {type: float, low: 0.1, high: 1}}\nfixed: {lr: 0.3}\n", ["space.lr is also in fixed"]),
    (
        "space: {lr: {type: float, low: 0.1, high: 1}}\nsampler: {name: cmaes}\n",
        ["unknown sampler 'cmaes'", "random, tpe"],
    ),
    ("space: {lr: {type: float, low: 0.1, high: 1}}\npruner: hyper\n", ["unknown pruner 'hyper'", "hyperband"]),
    ("space: {lr: {type: float, low: 0.1, high: 1}}\nn_trials: 0\n", ["n_trials must be an int >= 1"]),
    ("space: {}\n", ["space must be a non-empty mapping"]),
]


@pytest.mark.parametrize("text, fragments", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_tuning_files_exit_2_naming_the_problem(text, fragments, tmp_path, capsys):
    path = write(tmp_path, "fixed: {dataset: digits}\n" + text if "fixed:" not in text else text)
    assert main(["tune", str(path), "--executor", "debug", "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "r").exists()


class ValidationOnlyResult(dict):
    """A result whose test metrics must not be read."""

    def __getitem__(self, key):
        if key in ("knn_acc", "knn200_acc", "linear_acc"):
            raise AssertionError(f"the objective read the test metric {key}")
        return super().__getitem__(key)


def test_objective_reads_validation_metrics_only():
    result = ValidationOnlyResult(val_knn_acc=0.9, val_linear_acc=0.8, knn_acc=0.1, linear_acc=0.1, knn200_acc=0.1)
    assert studies.objective_value(result, "val_knn_acc") == 0.9
    assert studies.objective_value(result, "val_linear_acc") == 0.8
    with pytest.raises(ValueError, match="not a validation metric"):
        studies.objective_value(result, "knn_acc")
    assert studies.objective_value(ValidationOnlyResult(rankme=41.5, knn_acc=0.1), "rankme") == 41.5


def test_a_label_free_study_maximises_rankme_and_prunes_on_the_rankme_of_each_evaluation(tmp_path, monkeypatch):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    text = TUNE.replace("n_trials: 4", "n_trials: 1").replace("epochs: 4", "epochs: 2") + "objective: rankme\n"
    path = write(tmp_path, text)
    results = tmp_path / "r"
    assert main(["tune", str(path), "--executor", "debug", "--results-dir", str(results)]) == 0
    study = studies.open_study(load_tune(path), results / "t")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for t in study.get_trials():  # reported: the run's rankme of the val features at each evaluation
        metrics = RunDir(results / "t" / t.user_attrs["run_id"]).read_metrics()
        assert {m["epoch"]: m["rankme"] for m in metrics} == t.intermediate_values
        assert all(m["rankme"] != m["val_knn_acc"] for m in metrics)
        if t.state == optuna.trial.TrialState.COMPLETE:
            result = json.loads((results / "t" / t.user_attrs["run_id"] / "result.json").read_text())
            assert t.value == result["rankme"] and t.value > 1.0


def test_study_prunes_on_validation_knn_resumes_and_exports_into_a_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = write(tmp_path, TUNE)
    results = tmp_path / "r"
    assert main(["tune", str(path), "--executor", "debug", "--results-dir", str(results)]) == 0
    out = capsys.readouterr().out
    assert "t: " in out and "best: trial" in out and (results / "t" / "history.png").is_file()
    study = studies.open_study(load_tune(path), results / "t")
    trials = study.get_trials()
    assert studies.finished(study) == 4 and len(trials) == 4
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    for t in trials:  # what was reported to optuna is the run's own validation kNN, epoch by epoch
        metrics = RunDir(results / "t" / t.user_attrs["run_id"]).read_metrics()
        assert {m["epoch"]: m["val_knn_acc"] for m in metrics} == t.intermediate_values
        if t.state == optuna.trial.TrialState.COMPLETE:
            result = json.loads((results / "t" / t.user_attrs["run_id"] / "result.json").read_text())
            assert t.value == result["val_knn_acc"]

    write(tmp_path, TUNE.replace("n_trials: 4", "n_trials: 5"))  # resume: one more trial, none repeated
    assert main(["tune", str(path), "--executor", "debug", "--results-dir", str(results)]) == 0
    assert "4 of 5 trials complete or pruned" in capsys.readouterr().out
    assert len(studies.open_study(load_tune(path), results / "t").get_trials()) == 5

    best = tmp_path / "best.yaml"
    assert main(["tune", str(path), "--results-dir", str(results), "--export", str(best)]) == 0
    block = study.best_trial.params
    sweep = write(
        tmp_path,
        f"""
        name: uses-best
        include: [{best.name}]
        grid: {{method: [simclr, byol], seed: [0]}}
        fixed: {{dataset: digits, prior: pixel}}
        per: {{method: {{byol: {{epochs: 3}}}}}}
    """,
        "sweep.yaml",
    )
    cells = {c.axes["method"]: c.config for c in expand(load_sweep(sweep)).cells}
    assert cells["simclr"].lr == pytest.approx(block["lr"]) and cells["simclr"].k == block["k"]
    assert cells["simclr"].method_args["temperature"] == pytest.approx(block["method_args.temperature"])
    assert cells["byol"].lr is None and cells["byol"].epochs == 3


def test_trials_of_a_dead_worker_are_failed_and_their_budget_given_back(tmp_path):
    spec = load_tune(write(tmp_path, TUNE))
    study = studies.open_study(spec, tmp_path / "t")
    process = subprocess.Popen(["true"])
    process.wait()
    dead = study.ask()
    dead.set_user_attr("worker", {"host": os.uname().nodename, "pid": process.pid, "executor": "local"})
    alive = study.ask()
    alive.set_user_attr("worker", {"host": os.uname().nodename, "pid": os.getpid(), "executor": "local"})
    assert studies.recover_stale(study) == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {dead.number: optuna.trial.TrialState.FAIL, alive.number: optuna.trial.TrialState.RUNNING}
    assert studies.finished(study) == 0  # a failed trial does not use the budget


def start_tune(path: Path, results: Path, workers: int, output: int = subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmark.cli",
            "tune",
            str(path),
            "--workers",
            str(workers),
            "--results-dir",
            str(results),
        ],
        stdout=output,
        stderr=output,
        text=True,
        start_new_session=True,
        cwd=REPO,
    )


def running_trial(spec, study_dir: Path, after_finished: int = 0) -> optuna.trial.FrozenTrial:
    """A trial a worker is running, once `after_finished` trials are complete or pruned (from the journal)."""
    deadline = time.time() + 300
    while True:
        assert time.time() < deadline
        time.sleep(0.5)
        if (study_dir / "journal.log").is_file():
            study = studies.open_study(spec, study_dir)
            running = [
                t
                for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                if "worker" in t.user_attrs
            ]
            if running and studies.finished(study) >= after_finished:
                return running[0]


@pytest.mark.slow
def test_two_local_workers_survive_a_kill_9_and_resume_to_completion(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = write(tmp_path, TUNE.replace("n_trials: 4", "n_trials: 6").replace("epochs: 4", "epochs: 6"))
    results = tmp_path / "r"
    proc = start_tune(path, results, workers=2)
    spec = load_tune(path)
    victim = running_trial(spec, results / "t", after_finished=1)
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)  # a worker dies mid-trial
    proc.wait(timeout=600)
    study = studies.open_study(spec, results / "t")
    assert any(t.number == victim.number and t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials())

    assert main(["tune", str(path), "--workers", "2", "--results-dir", str(results)]) == 0
    err = capsys.readouterr().err
    assert f"trials [{victim.number}] were left running by a worker that is gone" in err
    study = studies.open_study(spec, results / "t")
    assert studies.finished(study) >= 6
    assert {t.number: t.state for t in study.get_trials()}[victim.number] == optuna.trial.TrialState.FAIL
    runs = [t.user_attrs["run_id"] for t in study.get_trials(states=studies.DONE_STATES)]
    assert len(runs) == len(set(runs))  # the two workers sample with their own seeds: no trial twice


def test_a_study_whose_worker_gives_up_exits_non_zero_saying_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = write(
        tmp_path,
        TUNE.replace("n_trials: 4", "n_trials: 1")
        .replace("epochs: 4", "epochs: 1, optimizer: sgd")
        .replace("low: 0.05, high: 5.0", "low: 1.0e+29, high: 1.0e+30"),
    )  # every trial diverges
    assert main(["tune", str(path), "--executor", "debug", "--results-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gpsbench: run failed: study t: 2 trials failed")


@pytest.mark.slow
def test_a_study_whose_worker_was_killed_exits_non_zero_saying_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = write(tmp_path, TUNE.replace("n_trials: 4", "n_trials: 3").replace("epochs: 4", "epochs: 30"))
    results = tmp_path / "r"
    proc = start_tune(path, results, workers=1, output=subprocess.PIPE)
    victim = running_trial(load_tune(path), results / "t")
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)  # the only worker dies
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "workers finished" in out
    assert err.strip().splitlines()[-1].startswith("gpsbench: run failed: study t ended with 0 of 3 trials")
    assert "worker 0 was killed" in err
