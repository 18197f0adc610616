"""The commands of many runs: `sweep`, `status`, `tune`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.common import Commands, print_notes
from benchmark.errors import ConfigError, TrainingError
from benchmark.rundir import default_results_dir


def cmd_sweep(args: argparse.Namespace) -> int:
    from benchmark.sweep.executors import ExecutorOptions
    from benchmark.sweep.launch import SweepRequest, run_sweep

    request = SweepRequest(
        file=Path(args.file),
        executor=args.executor,
        options=ExecutorOptions(max_parallel=args.max_parallel, profile=args.profile),
        results_root=Path(args.results_dir) if args.results_dir else default_results_dir(),
        overrides=tuple(args.assignments),
        dry_run=args.dry_run,
        retry_failed=args.retry_failed,
        seeds_until_width=args.seeds_until_width,
    )
    return run_sweep(request)


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.sweep.status import format_status, status_frame
    from benchmark.sweep.watch import watch

    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(
            f"no sweep folder {str(folder)!r}; sweeps here: "
            f"{', '.join(sorted(p.parent.name for p in default_results_dir().glob('*/sweep.json'))) or 'none'}"
        )
    if args.watch is not None:
        if not args.watch > 0:
            raise ConfigError(f"--watch takes a refresh interval in seconds > 0, got {args.watch}")
        return watch(folder, args.watch)
    frame = status_frame(folder, earlier=args.earlier)
    print(format_status(folder, frame))
    print_notes(frame.attrs.get("notes", []))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Run (or resume) a study; --export writes its best parameters as a sweep `per:` block."""
    from benchmark.sweep import study as studies
    from benchmark.sweep.tune_report import export, plots, report
    from benchmark.sweep.tuning import load_tune

    spec = load_tune(args.file)
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    from benchmark.sweep.executors import EXECUTORS, ExecutorOptions

    executor = EXECUTORS.get(args.executor)(ExecutorOptions(profile=args.profile), spec.resources)  # checked first
    results_root = Path(args.results_dir) if args.results_dir else default_results_dir()
    study_dir = results_root / spec.name
    study = studies.open_study(spec, study_dir)
    if args.export:
        print(export(study, spec, Path(args.export)))
        return 0
    stale = studies.recover_stale(study)
    if stale:
        print(
            f"{spec.name}: trials {stale} were left running by a worker that is gone: marked failed, "
            f"their budget given back",
            file=sys.stderr,
        )
    remaining = spec.n_trials - studies.finished(study)
    print(
        f"study {spec.name} -> {study_dir / 'journal.log'}: {studies.finished(study)} of {spec.n_trials} trials "
        f"complete or pruned; {args.workers} worker(s), executor {args.executor}"
    )
    if remaining > 0:
        jobs = studies.launch_workers(spec, study_dir, results_root, executor, args.workers)
        if not executor.waits:
            print(
                f"submitted {len(jobs)} worker(s) as a SLURM array ({jobs[0].job_id.split('_')[0]}); run the "
                f"same command again to see the study"
            )
            return 0
        studies.wait(study, spec, jobs, sys.stdout)
    print(report(study, spec))
    written = plots(study, spec, study_dir)
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    done = studies.finished(study)
    if done < spec.n_trials:  # the workers are gone and the budget is not spent: say why, exit non-zero
        endings = studies.worker_endings(jobs) or "its worker stopped"
        raise TrainingError(
            f"study {spec.name} ended with {done} of {spec.n_trials} trials complete or pruned: "
            f"{endings}; run the same command again to go on"
        )
    return 0


def add_sweep(commands: Commands) -> None:
    """sweep: a grid of runs from a sweep file."""
    from benchmark.sweep.executors import EXECUTORS

    sweep = commands.add_parser("sweep", help="run a grid of runs from a sweep file (skips done runs)")
    sweep.add_argument("file", help="sweep file, e.g. sweeps/digits.yaml")
    sweep.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS.names(),
        help="local: slots on this machine and wait; slurm: submit job arrays and return; debug: in this process",
    )
    sweep.add_argument("--profile", help="SLURM profile: a file or a name in slurm/profiles/")
    sweep.add_argument(
        "--max-parallel",
        type=int,
        help="local: runs at once (default: one per GPU, or cores / resources.cpus on the CPU)",
    )
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and its cost; start nothing")
    sweep.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    sweep.add_argument(
        "--seeds-until-width",
        type=float,
        metavar="W",
        help="add seeds to each cell until its 95%% t interval (seeds_until in the sweep file) is at most W wide",
    )
    sweep.add_argument("--results-dir", help="results root (default: $GPSBENCH_RESULTS or ./results)")
    sweep.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key in every run, e.g. --set data_path=... or epochs=2",
    )
    sweep.set_defaults(func=cmd_sweep)


def add_status(commands: Commands) -> None:
    """status: the states of a sweep's runs."""
    status = commands.add_parser("status", help="states of a sweep's runs (from their files and live jobs)")
    status.add_argument("folder", help="the sweep's folder, e.g. results/digits")
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=10.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 10) until every run is done or failed; Ctrl-C stops watching",
    )
    status.add_argument(
        "--earlier", action="store_true", help="also list runs of an earlier plan of this sweep (marked so)"
    )
    status.set_defaults(func=cmd_status)


def add_tune(commands: Commands) -> None:
    """tune: an optuna search on validation metrics."""
    from benchmark.sweep.executors import EXECUTORS

    tune = commands.add_parser("tune", help="optuna search on validation metrics (resumes from its journal)")
    tune.add_argument("file", help="tuning file, e.g. sweeps/tune-digits.yaml")
    tune.add_argument("--executor", default="local", choices=EXECUTORS.names())
    tune.add_argument("--profile", help="SLURM profile: a file or a name in slurm/profiles/")
    tune.add_argument("--workers", type=int, default=1, help="workers taking trials in parallel (a submitit array)")
    tune.add_argument("--results-dir", help="results root (default: $GPSBENCH_RESULTS or ./results)")
    tune.add_argument("--export", metavar="FILE", help="write the best parameters as a sweep `per:` block; run nothing")
    tune.set_defaults(func=cmd_tune)
