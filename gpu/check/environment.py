"""The machine the check runs on, the CIFAR-10 archive it trains on, and the environment of its steps."""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path

from gpu.check.options import REPO, CheckError

ARCHIVE = "cifar10-jpeg.tar.gz"
ARCHIVE_ENV = "GPSBENCH_CIFAR10_ARCHIVE"


def archive_places(bundle: Path | None) -> list[Path]:
    """Where the archive is looked for without --data-path: the bundle's data, $GPSBENCH_CIFAR10_ARCHIVE,
    then ../shared/data beside the repository."""
    places = [bundle / "data" / ARCHIVE] if bundle is not None else []
    if os.environ.get(ARCHIVE_ENV):
        places.append(Path(os.environ[ARCHIVE_ENV]))
    return places + [REPO.parent / "shared" / "data" / ARCHIVE]


def find_data_path(given: Path | None, bundle: Path | None = None) -> Path | None:
    if given is not None:
        return given.resolve() if given.is_file() else None
    return next((p.resolve() for p in archive_places(bundle) if p.is_file()), None)


def machine(device: str) -> dict:
    """What the figures were measured on."""
    try:
        import torch
    except ImportError as err:
        raise CheckError(
            f"{sys.executable} cannot import torch ({err}): run the check with a Python that has it (PYTHON=...), "
            "or make the bundle with --with-torch"
        ) from None

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    name = (
        torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
    )
    return {
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "host": socket.gethostname(),
    }


def step_environment(work: Path) -> dict:
    """The steps' environment: data and results under `work`, W&B off, the repository's code importable."""
    return {
        **os.environ,
        "GPSBENCH_DATA": str(work / "data"),
        "GPSBENCH_RESULTS": str(work / "results"),
        "WANDB_MODE": "disabled",
        "WANDB_SILENT": "true",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
