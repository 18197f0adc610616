"""The `gpsbench` command. Bad input is reported in one line with exit code 2, before any work; a run
that fails, a file that cannot be written and a run another process holds in one line with exit code 1;
an interrupted command exits with 128 + the signal (130 for Ctrl-C, 143 for a kill)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from benchmark.errors import ConfigError, StorageError, TrainingError
from benchmark.rundir import default_results_dir


class Parser(argparse.ArgumentParser):
    """argparse with its errors in one line, like every other error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# flag -> config key, for the flags `train` and `perf` share with RunConfig
RUN_FLAGS = {
    "dataset": str,
    "method": str,
    "aug": str,
    "backbone": str,
    "epochs": int,
    "seed": int,
    "device": str,
    "data_dir": str,
    "data_path": str,
    "subset": int,
    "batch_size": int,
    "lr": float,
    "image_size": int,
    "prior": str,
    "k": int,
    "sampling": str,
    "tau": float,
    "metric": str,
}


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    for key, kind in RUN_FLAGS.items():
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None)
    parser.add_argument("--config", help="YAML file of config keys (see docs/runs.md)")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set method_args.temperature=0.5",
    )


def config_from_args(args: argparse.Namespace, base: dict | None = None):
    """defaults < base < --config file < flags < --set; validated once, before anything runs."""
    from benchmark.config import RunConfig
    from benchmark.solo_import import load_config_file

    config = RunConfig.from_dict(base or {})
    if args.config:  # this suite's keys, or a solo-learn pretraining file (benchmark/solo_import.py)
        config = load_config_file(args.config, config)
    flags = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None}
    config = RunConfig.from_dict(flags, config)
    return config.with_overrides(args.assignments)


def cmd_train(args: argparse.Namespace) -> int:
    from benchmark.train import train_run

    config = config_from_args(args)
    out = Path(args.out) if args.out else default_results_dir() / "runs" / config.run_id
    result = train_run(config, out, resume=args.resume, restart=args.restart)
    print(json.dumps(result, indent=2))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from benchmark.perf import PerfSizes, run_perf
    from benchmark.perf.phases import PhaseFile

    base = {"dataset": "cifar10", "backbone": "resnet18", "aug": "strong", "method": "simclr", "epochs": 1}
    if args.prior is None:  # by default the GPS step: pixel prior (PCA to 256 dims: a quick table), k = 5
        base.update(prior="pixel", k=5, prior_args={"pca_dim": 256})
    config = config_from_args(args, base=base)
    if args.knn_images is not None and args.knn_images < 11:
        raise ConfigError(f"--knn-images {args.knn_images}: the exact table needs at least 11 embeddings")
    if args.approx_images is not None and (args.approx_images < 0 or 0 < args.approx_images < 11):
        raise ConfigError(f"--approx-images {args.approx_images}: 0 (skip the IVF table) or at least 11 embeddings")
    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers {args.workers}: 0 (load in the main process) or more DataLoader workers")
    if args.precision_check < 0:
        raise ConfigError(f"--precision-check {args.precision_check}: 0 (off) or the number of steps to compare")
    sizes = PerfSizes.for_run(args.quick, args.knn_images, args.approx_images)
    run_perf(
        config,
        quick=args.quick,
        workers=args.workers,
        out=args.out,
        results_dir=default_results_dir(),
        sizes=sizes,
        precision_steps=args.precision_check,
        on_phase=PhaseFile(args.phases) if args.phases else None,
    )
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Decode and cache a dataset once (e.g. before a sweep), and show its splits."""
    from benchmark.data import load_run_data

    config = config_from_args(args)
    data = load_run_data(config)
    print(
        f"{data.name}: {data.num_classes} classes, {data.image_size}x{data.image_size} px, "
        f"train {len(data.train)}, val {len(data.val)} (pretraining: {len(data.pretrain)}), test {len(data.test)}, "
        f"fingerprint {data.fingerprint()}"
    )
    return 0


def cmd_prior(args: argparse.Namespace) -> int:
    """Build (or load) a prior's embedding and neighbour table, and report its quality and costs."""
    import torch

    from benchmark.assembly import select_device
    from benchmark.data import load_run_data
    from benchmark.pairing import build_sampler

    config = config_from_args(args)
    if not config.is_gps:
        raise ConfigError(f"prior {config.prior!r} with k={config.k} is plain SSL: give --prior P and --k K >= 1")
    started = time.perf_counter()
    data = load_run_data(config)
    load_seconds = time.perf_counter() - started
    setup = build_sampler(config, data, select_device(config.device), results_dir=default_results_dir())
    report = {
        "dataset": config.dataset,
        "train_images": len(data.pretrain),
        "prior": config.prior,
        "k": config.k,
        "metric": config.metric,
        "sampling": config.sampling,
        "prior_nn_agreement": setup.prior_nn_agreement,
        "data_seconds": load_seconds,
        **setup.report,
    }
    anchors = torch.arange(min(len(data.pretrain), 8))
    report["example_positives"] = {int(a): int(p) for a, p in zip(anchors, setup.sampler(anchors, torch.Generator()))}
    width = max(len(key) for key in report)
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    return 0


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
    )
    return run_sweep(request)


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.sweep.status import format_status
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
    print(format_status(folder))
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


def cmd_table(args: argparse.Namespace) -> int:
    from benchmark.results import FORMATTERS, build_table, collect, compare_paper, load_reference, prior_table

    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"no sweep folder {str(folder)!r}")
    started = time.perf_counter()
    frame, counts = collect(folder)
    if frame.empty:
        raise ConfigError(
            f"{folder}: no done runs to tabulate ({counts['failed']} failed, {counts['corrupt']} "
            f"corrupt, {counts['missing']} missing); see gpsbench status {folder}"
        )
    split = lambda text: [axis.strip() for axis in text.split(",")] if text else None  # noqa: E731
    if args.kind == "priors":
        text = prior_table(frame, args.metric)
    else:
        table = build_table(frame, counts, args.metric, split(args.rows), split(args.cols))
        text = FORMATTERS[args.format](table)
        if args.save:
            from benchmark.plots import write_plots

            for fmt, suffix in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
                (folder / f"table-{args.metric}.{suffix}").write_text(FORMATTERS[fmt](table) + "\n")
            written = [folder / f"table-{args.metric}.{s}" for s in ("md", "tex", "csv")]
            plots, notes = write_plots(folder, args.metric)
            print("wrote " + ", ".join(str(p) for p in written + plots), file=sys.stderr)
            for note in notes:
                print(f"gpsbench: note: {note}", file=sys.stderr)
    if args.compare == "paper":
        text += "\n\nBeside the paper (results/reference/paper.csv):\n\n" + compare_paper(
            frame, args.metric, load_reference()
        )
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    print(f"({len(frame)} runs collected and tabulated in {time.perf_counter() - started:.2f} s)", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The backbone of a done run as one .safetensors file (benchmark/export.py)."""
    from benchmark.export import export_backbone, export_summary

    metadata = export_backbone(args.run_dir, args.out)
    print(export_summary(args.out, metadata))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """Print every method's reference recipe as the Markdown table docs/training.md holds."""
    from benchmark.recipe_table import recipe_table

    print(recipe_table(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gpsbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser("train", help="train and evaluate one run")
    _add_run_flags(train)
    train.add_argument("--out", help="run directory (default: $GPSBENCH_RESULTS/runs/<run_id>)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    again.add_argument(
        "--restart",
        action="store_true",
        help="train from scratch even if the run directory holds a checkpoint or a result",
    )
    train.set_defaults(func=cmd_train)

    perf = commands.add_parser("perf", help="measure the training pipeline against a DataLoader, side by side")
    _add_run_flags(perf)
    perf.add_argument("--quick", action="store_true", help="few steps: a couple of minutes on a 2-core CPU")
    perf.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: all cores)")
    perf.add_argument("--out", help="JSON file (default: $GPSBENCH_RESULTS/perf/<host>-<device>.json)")
    perf.add_argument(
        "--knn-images",
        type=int,
        default=None,
        help="embeddings in the timed exact neighbour search (default 50,000; --quick 20,000)",
    )
    perf.add_argument(
        "--approx-images",
        type=int,
        default=None,
        help="embeddings in the timed IVF search (default 1,000,000; --quick 100,000; 0 skips it)",
    )
    perf.add_argument(
        "--precision-check",
        type=int,
        default=0,
        metavar="STEPS",
        help="also train the first STEPS steps with bf16 autocast and in fp32 from the same seed and compare "
        "their losses (report key `precision`; default 0: off)",
    )
    perf.add_argument(
        "--phases",
        metavar="FILE",
        help="write each phase's figures to this JSON file as soon as they are measured, so a perf stopped "
        "in a later phase keeps the earlier ones",
    )
    perf.set_defaults(func=cmd_perf)

    prior = commands.add_parser("prior", help="build or load a prior's neighbour table; print its quality and timings")
    _add_run_flags(prior)
    prior.set_defaults(func=cmd_prior)

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
    status.set_defaults(func=cmd_status)

    tune = commands.add_parser("tune", help="optuna search on validation metrics (resumes from its journal)")
    tune.add_argument("file", help="tuning file, e.g. sweeps/tune-digits.yaml")
    tune.add_argument("--executor", default="local", choices=EXECUTORS.names())
    tune.add_argument("--profile", help="SLURM profile: a file or a name in slurm/profiles/")
    tune.add_argument("--workers", type=int, default=1, help="workers taking trials in parallel (a submitit array)")
    tune.add_argument("--results-dir", help="results root (default: $GPSBENCH_RESULTS or ./results)")
    tune.add_argument("--export", metavar="FILE", help="write the best parameters as a sweep `per:` block; run nothing")
    tune.set_defaults(func=cmd_tune)

    from benchmark.results import FORMATS, METRICS

    table = commands.add_parser("table", help="the paper-style table of a sweep (mean ± std over seeds)")
    table.add_argument("folder", help="the sweep's folder, e.g. results/digits")
    table.add_argument(
        "--metric",
        default="linear_acc",
        help=f"any numeric key of result.json: {', '.join(METRICS)}, rankme, alignment, uniformity, val_knn_acc, ...",
    )
    table.add_argument("--rows", help="comma-separated axes (default: method with its plain and GPS variants)")
    table.add_argument("--cols", help="comma-separated axes (default: dataset,aug)")
    table.add_argument("--format", default="markdown", choices=FORMATS)
    table.add_argument(
        "--kind",
        default="cells",
        choices=("cells", "priors"),
        help="priors: prior x dataset with prior_nn_agreement and the gain of GPS over plain SSL",
    )
    table.add_argument("--compare", choices=("paper",), help="add the paper's published numbers beside ours")
    table.add_argument("--out", help="write the table to this file instead of printing it")
    table.add_argument(
        "--save",
        action="store_true",
        help="also write table-<metric>.md/.tex/.csv and the plots (PNG) into the sweep folder",
    )
    table.set_defaults(func=cmd_table)

    data = commands.add_parser("data", help="decode, cache and describe a dataset")
    _add_run_flags(data)
    data.set_defaults(func=cmd_data)

    export = commands.add_parser("export", help="write a done run's backbone to a .safetensors file")
    export.add_argument("run_dir", help="the run directory (holds config.json, checkpoint.pt)")
    export.add_argument("--out", required=True, help="the file to write, FILE.safetensors")
    export.set_defaults(func=cmd_export)

    recipes = commands.add_parser("recipes", help="every method's reference recipe, with its sources (Markdown)")
    recipes.set_defaults(func=cmd_recipes)
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmark.claim import RunBusy

    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit: the write fails and says so (EFBIG)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"gpsbench: error: {one_line(err)}", file=sys.stderr)
        return 2
    except TrainingError as err:  # the run's status.json holds the error and its traceback
        print(f"gpsbench: run failed: {one_line(err)}", file=sys.stderr)
        return 1
    except (StorageError, RunBusy) as err:
        print(f"gpsbench: error: {one_line(err)}", file=sys.stderr)
        return 1
    except OSError as err:  # a file to read or a folder to write that the system refused
        where = f" {err.filename}" if err.filename else ""
        print(f"gpsbench: error: cannot access{where}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        return 128 + int(getattr(err, "signum", signal.SIGINT))


def one_line(err: BaseException) -> str:
    """Problems listed on several lines (one per problem, see errors.Problems) stay as they are;
    anything else is one line."""
    text = str(err)
    listed = all(line.startswith("  ") for line in text.split("\n")[1:])  # a heading, then indented lines
    return text if listed else " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
