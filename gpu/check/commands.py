"""What each step runs: `gpsbench perf` and `gpsbench sweep sweeps/gpu-check.yaml`, with the check's sizes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gpu.check.options import REPO, Sizes
from gpu.check.plan import eval_every

SWEEP_FILE = REPO / "sweeps" / "gpu-check.yaml"
SWEEP_NAME = "gpu-check"
GPSBENCH = [sys.executable, "-m", "benchmark.cli"]  # the repository's code, by this Python
PRECISION_SCHEDULE_EPOCHS = 200  # the precision check compares the first steps of a 200-epoch run's lr schedule


def usable_cpus() -> int:
    """The CPUs this process may run on (a SLURM job's allocation, not the node's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def perf_command(device: str, sizes: Sizes, data_path: Path, data_dir: Path, out: Path) -> list[str]:
    """perf --quick, compiled, at the check's batch and backbone, a DataLoader worker per usable CPU, with
    its bf16-vs-fp32 check; each phase's figures go to perf-phases.json as soon as measured, the report
    to perf.json."""
    args = ["perf", "--device", device, "--quick", "--set", "compile=true", "--workers", str(usable_cpus())]
    args += ["--batch-size", str(sizes.batch_size), "--backbone", sizes.backbone]
    args += ["--epochs", str(PRECISION_SCHEDULE_EPOCHS)]
    args += ["--data-path", str(data_path), "--data-dir", str(data_dir)]
    args += ["--out", str(out / "perf.json"), "--phases", str(out / "perf-phases.json")]
    optional = {
        "--subset": sizes.subset,
        "--knn-images": sizes.knn_images,
        "--approx-images": sizes.approx_images,
        "--precision-check": sizes.precision_steps or None,
    }
    args += [x for flag, value in optional.items() if value is not None for x in (flag, str(value))]
    return GPSBENCH + args


def sweep_overrides(
    device: str, sizes: Sizes, epochs: int, data_path: Path, data_dir: Path, extra: list[str]
) -> list[str]:
    """The sweep's `--set`s: device, sizes, the epochs with a validation curve of about 6 points, data."""
    sets = [
        f"device={device}",
        f"batch_size={sizes.batch_size}",
        f"epochs={epochs}",
        f"eval_every={eval_every(epochs)}",
        f"backbone={sizes.backbone}",
        f"compile={str(sizes.compile).lower()}",
        f"data_path={data_path}",
        f"data_dir={data_dir}",
    ]
    if sizes.subset is not None:
        sets.append(f"subset={sizes.subset}")
    return sets + list(extra)


def sweep_command(overrides: list[str], results_dir: Path) -> list[str]:
    """The three runs one after another in this process group (the debug executor)."""
    args = ["sweep", str(SWEEP_FILE), "--executor", "debug", "--results-dir", str(results_dir)]
    return GPSBENCH + args + [x for o in overrides for x in ("--set", o)]
