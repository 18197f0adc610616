"""The commands of one run: `train`, `perf`, `prior`, `data`, `export`, `recipes`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmark.cli.common import Commands, add_run_flags, config_from_args
from benchmark.errors import ConfigError
from benchmark.rundir import default_results_dir


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


def cmd_export(args: argparse.Namespace) -> int:
    """The backbone of a done run as one .safetensors file (benchmark/export.py)."""
    from benchmark.export import export_backbone, export_summary

    metadata = export_backbone(args.run_dir, args.out)
    print(export_summary(args.out, metadata))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """Print every method's reference recipe and the pipeline each view takes, as the Markdown tables
    docs/training.md holds."""
    from benchmark.recipe_table import recipe_table, views_table

    print(recipe_table() + "\n" + views_table(), end="")
    return 0


def add_train(commands: Commands) -> None:
    """train: train and evaluate one run."""
    train = commands.add_parser("train", help="train and evaluate one run")
    add_run_flags(train)
    train.add_argument("--out", help="run directory (default: $GPSBENCH_RESULTS/runs/<run_id>)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    again.add_argument(
        "--restart",
        action="store_true",
        help="train from scratch even if the run directory holds a checkpoint or a result",
    )
    train.set_defaults(func=cmd_train)


def add_perf(commands: Commands) -> None:
    """perf: the training pipeline against a DataLoader, side by side."""
    perf = commands.add_parser("perf", help="measure the training pipeline against a DataLoader, side by side")
    add_run_flags(perf)
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


def add_prior(commands: Commands) -> None:
    """prior: a prior's neighbour table, its quality and timings."""
    prior = commands.add_parser("prior", help="build or load a prior's neighbour table; print its quality and timings")
    add_run_flags(prior)
    prior.set_defaults(func=cmd_prior)


def add_data(commands: Commands) -> None:
    """data: decode, cache and describe a dataset."""
    data = commands.add_parser("data", help="decode, cache and describe a dataset")
    add_run_flags(data)
    data.set_defaults(func=cmd_data)


def add_export(commands: Commands) -> None:
    """export: a done run's backbone as a .safetensors file."""
    export = commands.add_parser("export", help="write a done run's backbone to a .safetensors file")
    export.add_argument("run_dir", help="the run directory (holds config.json, checkpoint.pt)")
    export.add_argument("--out", required=True, help="the file to write, FILE.safetensors")
    export.set_defaults(func=cmd_export)


def add_recipes(commands: Commands) -> None:
    """recipes: every method's reference recipe (Markdown)."""
    recipes = commands.add_parser("recipes", help="every method's reference recipe, with its sources (Markdown)")
    recipes.set_defaults(func=cmd_recipes)
