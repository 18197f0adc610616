"""The `slurm` executor: job arrays through submitit's SlurmExecutor, chunked to the cluster's
MaxArraySize, a `run:` prior's cells after their source (afterany); it submits and returns."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

from benchmark.errors import ClusterError, ConfigError
from benchmark.sweep.controller import check_controller
from benchmark.sweep.executors.base import EXECUTORS, ExecutorOptions, Launch, Progress, Workers, mark_submitted
from benchmark.sweep.job import RunJob
from benchmark.sweep.profiles import chunks, cluster_max_array_size, load_profile
from benchmark.sweep.run_views import JobProbe, run_state
from benchmark.sweep.spec import Resources


@contextlib.contextmanager
def submitting(count: int):
    """sbatch failing under submitit (the controller went away after it answered, a refused option):
    one line with what sbatch said, instead of submitit's traceback."""
    from submitit.core.utils import FailedJobError

    try:
        yield
    except (FailedJobError, subprocess.SubprocessError, OSError) as err:
        said = " ".join(str(err).split())[-300:]
        raise ClusterError(f"SLURM did not take {count} job(s): {said}") from None


@EXECUTORS.register("slurm")
class SlurmExecutor:
    """Job arrays through submitit's SlurmExecutor: submit, record the job ids, return."""

    waits = False

    def __init__(self, options: ExecutorOptions, resources: Resources):
        self.profile = load_profile(options.profile)
        self.resources = resources
        if not shutil.which("sbatch"):
            raise ConfigError(
                "--executor slurm needs SLURM's sbatch on this machine (a login node); "
                "valid executors here: local, debug"
            )
        check_controller()  # before the plan is written or anything submitted

    def run(self, launch: Launch, progress: Progress) -> None:
        import submitit

        executor = submitit.SlurmExecutor(
            folder=launch.sweep_dir / ".submitit" / "%j", max_num_timeout=self.resources.max_attempts
        )
        params = self.profile.sbatch_parameters(self.resources)
        size = self.profile.max_array_size or cluster_max_array_size()
        array_of: dict[str, str] = {}  # run_id -> array job id (for afterany dependencies)
        probe = JobProbe()
        for run_id in launch.watch:
            status = run_state(launch.sweep_dir / run_id, probe).status
            if status.get("executor") == "slurm" and status.get("job_id"):
                array_of[run_id] = str(status["job_id"]).split("_")[0]
        launching = {job.run_id for job in launch.jobs}
        first: list[RunJob] = []
        second: list[RunJob] = []  # the jobs whose prior source is in this launch or already queued
        for job in launch.jobs:
            (second if job.depends_on in array_of or job.depends_on in launching else first).append(job)
        stages = [first, second]
        for stage in stages:
            for chunk in chunks(stage, size):
                waits_for = sorted({array_of[j.depends_on] for j in chunk if j.depends_on in array_of})
                executor.update_parameters(
                    **params, dependency=f"afterany:{':'.join(waits_for)}" if waits_for else None
                )
                for job in chunk:
                    job.threads = self.resources.cpus  # torch and faiss keep to the CPUs SLURM gave the task
                with submitting(len(chunk)), executor.batch():
                    handles = [executor.submit(job) for job in chunk]
                for job, handle in zip(chunk, handles):
                    array_of[job.run_id] = handle.job_id.split("_")[0]
                    mark_submitted(job.run_dir, "slurm", handle.job_id, log=handle.paths.stderr)
                    progress.started(job.run_id, f"SLURM job {handle.job_id}")

    def start_workers(self, workers: Workers) -> list:
        import submitit

        params = self.profile.sbatch_parameters(workers.resources)
        params["time"] = params["time"] * max(1, -(-workers.trials // workers.count))  # a worker runs several trials
        executor = submitit.SlurmExecutor(folder=workers.folder / "%j")
        executor.update_parameters(**params)
        with submitting(workers.count), executor.batch():
            return [
                executor.submit(workers.make(workers.resources.cpus, "slurm", index)) for index in range(workers.count)
            ]
