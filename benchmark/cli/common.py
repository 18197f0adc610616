"""What the command's parts share: the parser that reports errors in one line, the flags `train`,
`perf`, `prior` and `data` share with RunConfig, and the config those flags describe."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmark.config import RunConfig

# the subparsers action that every command group adds its commands to
Commands = Any


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


def add_run_flags(parser: argparse.ArgumentParser) -> None:
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


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> RunConfig:
    """defaults < base < --config file < flags < --set; validated once, before anything runs."""
    # imported here, not at the top: `gpsbench status` and `table` start without loading torch
    from benchmark.config import RunConfig
    from benchmark.solo_import import load_config_file

    config = RunConfig.from_dict(base or {})
    if args.config:  # this suite's keys, or a solo-learn pretraining file (benchmark/solo_import.py)
        config = load_config_file(args.config, config)
    flags = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None}
    config = RunConfig.from_dict(flags, config)
    return config.with_overrides(args.assignments)


def print_notes(notes: list[str]) -> None:
    """What a command left out or counted once (another plan's runs, copies, links), a line each."""
    for note in notes:
        print(f"gpsbench: note: {note}", file=sys.stderr)
