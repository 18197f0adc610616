"""The check's command line: what it runs, with what sizes, within how much time, and where it writes."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "results" / "gpu-check" / "out"
DEFAULT_WORK = REPO / "results" / "gpu-check" / "work"
DEFAULT_BUDGET = "20m"  # perf (at most 6 minutes) and a 3-run sweep of about 100 epochs at the estimated speed
STEPS = ("perf", "sweep")


@dataclass(frozen=True)
class Sizes:
    """What the check measures with; `--device cpu` starts from CPU_SIZES."""

    batch_size: int = 512
    epochs: int | None = None  # None: the most that fit the budget
    subset: int | None = None  # None: every training image
    backbone: str = "resnet18"
    compile: bool = True  # in the sweep (perf always compiles)
    knn_images: int | None = None  # perf's table sizes (None: its --quick sizes)
    approx_images: int | None = None
    precision_steps: int = 20  # bf16 vs fp32 steps in perf (0: none)


GPU_SIZES = Sizes()
CPU_SIZES = Sizes(
    batch_size=64,
    epochs=2,
    subset=600,
    backbone="small",
    compile=False,
    knn_images=600,
    approx_images=0,
    precision_steps=3,
)
SIZE_KEYS = {"batch_size": int, "epochs": int, "subset": int, "backbone": str, "compile": bool}
SIZE_FLAGS = ("batch_size", "epochs", "subset", "backbone", "precision_steps")


def seconds(text: str) -> float:
    """A duration: 900, 900s, 15m or 1.5h."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a positive duration such as 900, 900s, 15m or 1.5h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpu/check.sh",
        description="The GPU check: gpsbench perf (with its bf16-vs-fp32 check) and the paper's CIFAR-10 "
        "claim (sweeps/gpu-check.yaml) within a time budget, then a summary (docs/gpu-check.md).",
    )
    parser.add_argument("--device", default="cuda", help="cuda, cuda:<i>, or cpu (the same check at small sizes)")
    parser.add_argument(
        "--budget",
        type=seconds,
        default=seconds(DEFAULT_BUDGET),
        help=f"time for everything (default {DEFAULT_BUDGET})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where the results go (default: results/gpu-check/out in the checkout)",
    )
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="runs and data caches (default: results/gpu-check/work)"
    )
    parser.add_argument("--data-path", type=Path, help="the CIFAR-10 JPEG archive (default: see docs/gpu-check.md)")
    parser.add_argument("--steps", default=",".join(STEPS), help="which steps, comma-separated (default: %(default)s)")
    parser.add_argument("--epochs", type=int, help="sweep epochs (default on cuda: the most that fit the budget)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--subset", type=int, help="training images (default: all on cuda, 600 on cpu)")
    parser.add_argument("--backbone", help="default: resnet18 on cuda, small on cpu")
    parser.add_argument("--precision-steps", type=int, help="bf16 vs fp32 steps in perf (default 20; 3 on cpu)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config key of the sweep's runs (epochs, batch_size, subset, backbone and compile also size perf)",
    )
    parser.add_argument("--keep-runs", action="store_true", help="reuse the done runs of an earlier check")
    parser.add_argument(
        "--on-behind",
        choices=("stop", "continue"),
        default="stop",
        help="when the sweep cannot finish in time: stop it at once (default) or let its time limit cut it",
    )
    parser.add_argument("--summary", action="store_true", help="print the summary of --out/--work again; run nothing")
    _add_bundle_flags(parser)
    return parser


def _add_bundle_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("a node without internet (docs/gpu-check.md)")
    group.add_argument("--bundle", type=Path, metavar="DIR", help="write the wheels, data and code here; run nothing")
    group.add_argument("--python-version", help="--bundle: the node's Python, e.g. 3.12 (default: this Python's)")
    group.add_argument(
        "--platform",
        action="append",
        metavar="TAG",
        help="--bundle: the node's wheel platform, repeatable (default: manylinux x86_64; e.g. manylinux_2_28_aarch64)",
    )
    group.add_argument(
        "--with-torch", action="store_true", help="--bundle: torch and torchvision too (default: the node's own)"
    )
    group.add_argument("--from-bundle", type=Path, metavar="DIR", help="install from and read data from this bundle")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device.split(":")[0] not in ("cuda", "cpu"):
        parser.error(f"--device {args.device!r}: valid: cuda, cuda:<i>, cpu")
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"--steps: unknown {', '.join(unknown)}; valid: {', '.join(STEPS)}")
    try:
        args.sizes, args.sets = resolve_sizes(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def resolve_sizes(args: argparse.Namespace) -> tuple[Sizes, list[str]]:
    """The device's sizes < flags < `--set` of a sizing key; the other `--set`s pass through to the sweep."""
    sizes = CPU_SIZES if args.device == "cpu" else GPU_SIZES
    flags = {key: getattr(args, key) for key in SIZE_FLAGS if getattr(args, key) is not None}
    sizes = dataclasses.replace(sizes, **flags)
    rest = []
    for text in args.sets:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {text!r}")
        if key == "device":
            raise ValueError("--set device=...: use --device (it also picks the sizes)")
        if key not in SIZE_KEYS:
            rest.append(text)
            continue
        kind = SIZE_KEYS[key]
        try:
            value: Any = raw.lower() in ("1", "true", "yes", "on") if kind is bool else kind(raw)
        except ValueError:
            raise ValueError(f"--set {text}: {key} must be {kind.__name__}") from None
        sizes = dataclasses.replace(sizes, **{key: value})
    return sizes, rest


class CheckError(Exception):
    """Bad input or a missing prerequisite, reported in one line (exit code 2) before any step runs."""
