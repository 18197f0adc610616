"""An optuna study on the suite's executors. The journal (`results/<study>/journal.log`, optuna's
JournalFileBackend: append-only, safe on the shared file systems of clusters, where SQLite is not) is
the study; N workers (a submitit array: local slots or SLURM) each take trials until `n_trials` are
complete or pruned. Each trial is a normal run in the registry, `results/<study>/<run_id>/`."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import optuna
import submitit

from benchmark.errors import TrainingError
from benchmark.liveness import JobProbe
from benchmark.runstate import RunState
from benchmark.scheduler import current_job_id
from benchmark.sweep.executors import Executor, Workers
from benchmark.sweep.job import use_threads
from benchmark.sweep.journal import repair_journal
from benchmark.sweep.tuning import OBJECTIVES, TuneSpec
from benchmark.tracking import Labels

DONE_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
MAX_FAILURES_PER_TRIAL = 2  # a worker gives up when failed trials reach twice the budget


def storage(study_dir: Path) -> optuna.storages.JournalStorage:
    """The study's journal, its torn last line cut off first (benchmark/sweep/journal.py)."""
    from optuna.storages.journal import JournalFileBackend

    study_dir.mkdir(parents=True, exist_ok=True)
    repaired = repair_journal(study_dir / "journal.log")
    if repaired:
        print(f"gpsbench: warning: {repaired}", file=sys.stderr)
    return optuna.storages.JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))


def sampler(spec: TuneSpec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Worker i samples with seed + i: with one seed, parallel workers would propose the same trials."""
    seed = spec.sampler.seed + worker
    if spec.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.sampler.n_startup_trials)


def pruner(spec: TuneSpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource, max_resource=int(spec.fixed.get("epochs", 100))
        )
    return optuna.pruners.NopPruner()


def open_study(spec: TuneSpec, study_dir: Path, worker: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=spec.name,
        storage=storage(study_dir),
        sampler=sampler(spec, worker),
        pruner=pruner(spec),
        direction="maximize",
        load_if_exists=True,
    )


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=DONE_STATES))


def objective_value(result: Mapping[str, Any], objective: str) -> float:
    """The one number a trial is judged by: a validation metric, read by name and nothing else."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not a validation metric; valid: {', '.join(OBJECTIVES)}")
    return float(result[objective])


def recover_stale(study: optuna.Study, probe: JobProbe | None = None) -> list[int]:
    """Trials left RUNNING by a worker that no longer exists become FAIL (they do not count toward
    n_trials, so their budget is given back). Returns their numbers."""
    probe = probe or JobProbe()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", {})
        status = {
            "state": RunState.RUNNING,
            "host": worker.get("host"),
            "pid": worker.get("pid"),
            "executor": worker.get("executor"),
            "job_id": worker.get("job_id"),
        }
        if probe.alive(status) is False:
            # optuna's public API; a trial that its worker finished meanwhile is left as it ended
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed


class DuplicateTrial(RuntimeError):
    """Two workers drew the same run while it trains: this trial fails (its budget is given back)."""


class TuneWorker(submitit.helpers.Checkpointable):
    """Takes trials until the study has n_trials complete or pruned ones."""

    def __init__(
        self,
        spec: TuneSpec,
        study_dir: Path,
        results_root: Path,
        threads: int | None = None,
        executor: str = "debug",
        index: int = 0,
    ):
        self.spec = spec
        self.index = index
        self.study_dir = Path(study_dir)
        self.results_root = Path(results_root)
        self.threads = threads
        self.executor = executor

    def __call__(self) -> int:
        use_threads(self.threads)
        study = open_study(self.spec, self.study_dir, self.index)
        ran = 0
        while finished(study) < self.spec.n_trials:
            failures = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
            if failures >= MAX_FAILURES_PER_TRIAL * self.spec.n_trials:
                raise TrainingError(
                    f"study {self.spec.name}: {failures} trials failed (see their status.json); "
                    f"stopping instead of failing forever"
                )
            study.optimize(self.objective, n_trials=1, catch=(Exception,))
            ran += 1
        return ran

    def worker_info(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "job_id": current_job_id(), "executor": self.executor}

    def objective(self, trial: optuna.Trial) -> float:
        from benchmark.train import train_run

        trial.set_user_attr("worker", self.worker_info())
        params = {param.name: param.suggest(trial) for param in self.spec.space}
        config = self.spec.wandb.apply(self.spec.config(params))
        for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if other.number != trial.number and other.user_attrs.get("run_id") == config.run_id:
                raise DuplicateTrial(f"trial {other.number} is training the same run {config.run_id}")
        trial.set_user_attr("run_id", config.run_id)
        run_dir = self.study_dir / config.run_id

        online = OBJECTIVES[self.spec.objective]  # the objective's metric logged during training

        def report(metrics: dict) -> None:  # validation kNN and rankme every `evaluate_every` epochs
            if online in metrics:
                trial.report(metrics[online], metrics["epoch"])
                if metrics["epoch"] < config.epochs and trial.should_prune():  # the last epoch completes
                    raise optuna.TrialPruned(f"pruned at epoch {metrics['epoch']} ({online} {metrics[online]:.4f})")

        result = train_run(
            config,
            run_dir,
            resume=True,
            results_dir=self.results_root,
            epoch_callback=report,
            wandb_labels=Labels(self.spec.name, trial=trial.number),  # no tag per trial: its number is config
        )
        return objective_value(result, self.spec.objective)


def launch_workers(spec: TuneSpec, study_dir: Path, results_root: Path, executor: Executor, workers: int) -> list:
    """Start the workers on an executor of the sweeps' registry and return their submitit jobs (debug:
    one worker, run here to the end)."""

    def make(threads: int | None, name: str, index: int) -> TuneWorker:
        return TuneWorker(spec, study_dir, results_root, threads, name, index)

    return executor.start_workers(Workers(make, workers, study_dir / ".submitit", spec.resources, spec.n_trials))


def wait(study: optuna.Study, spec: TuneSpec, jobs: list, out, poll_s: float = 2.0) -> None:
    """Until every local worker has exited, printing the study's progress when it changes."""
    last = None
    while jobs and not all(job.done() for job in jobs):
        trials = study.get_trials(deepcopy=False)
        counts = {state.name.lower(): sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
        line = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        if line != last:
            best = f"; best {study.best_value:.4f}" if counts.get("complete") else ""
            print(f"[{time.strftime('%H:%M:%S')}] {spec.name}: {line} (of {spec.n_trials}){best}", file=out, flush=True)
            last = line
        time.sleep(poll_s)
    print(f"[{time.strftime('%H:%M:%S')}] workers finished", file=out, flush=True)


def worker_endings(jobs: list) -> str:
    """How each worker of a study ended, for a study that ended short of its budget."""
    endings = []
    for index, job in enumerate(jobs):
        error = job.exception()
        if error is None:
            how = "exited"
        elif isinstance(error, submitit.core.utils.UncompletedJobError):
            how = "was killed (it left no result)"
        else:
            how = f"stopped: {str(error).strip().splitlines()[-1]}"
        endings.append(f"worker {index} {how} (log: {job.paths.stderr})")
    return "; ".join(endings)
