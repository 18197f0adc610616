"""Shared fixtures: an environment of the suite's own (W&B off unless a test turns it on), real data
from ../shared/data when present."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Where the user's shell may point the tests at resources (a running localhost SLURM, the CIFAR-10
# archive): read once here, then cleared with everything else below, so they only ever say where a
# resource is and never change what a command under test does.
RESOURCES = {name: os.environ.get(name) for name in ("GPSBENCH_SLURM_DIR", "GPSBENCH_CIFAR10_ARCHIVE")}
# Variables the suite, W&B, SLURM, submitit, torch.distributed or CUDA read: a user's exported WANDB_MODE,
# GPSBENCH_RESULTS or CUDA_VISIBLE_DEVICES must change no test's outcome
CLEARED_PREFIXES = ("WANDB_", "GPSBENCH_", "SLURM_", "SUBMITIT_", "TORCHELASTIC_")
CLEARED = ("CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR")
CLEARED += ("MASTER_PORT", "NETRC")
SET = {"WANDB_MODE": "disabled", "WANDB_SILENT": "true"}


def resource(name: str) -> str | None:
    """A resource location the user's environment gave (see RESOURCES)."""
    return RESOURCES[name]


def hermetic(environ) -> None:
    """Clear what would change results and set what the tests rely on, in `environ` (a MonkeyPatch)."""
    for name in list(os.environ):
        if name.startswith(CLEARED_PREFIXES) or name in CLEARED:
            environ.delenv(name)
    for name, value in SET.items():
        environ.setenv(name, value)


@pytest.fixture(scope="session", autouse=True)
def hermetic_environment():
    """Set for the whole session, before any other fixture: subprocesses the tests start inherit it;
    tests that need a variable set it with monkeypatch on top."""
    with pytest.MonkeyPatch.context() as environ:
        hermetic(environ)
        yield


def cifar_archive() -> Path | None:
    """The JPEG CIFAR-10 archive: $GPSBENCH_CIFAR10_ARCHIVE or ../shared/data beside the repository."""
    candidates = [resource("GPSBENCH_CIFAR10_ARCHIVE"), REPO.parent / "shared/data/cifar10-jpeg.tar.gz"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="module")
def one_thread():
    """Tests of tiny tensors: one torch and one faiss (OpenMP) thread, restored afterwards. On a busy
    2-core machine OpenMP spin-waits otherwise make a 1 ms operation take 0.4 s."""
    import faiss
    import torch

    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(faiss_threads)


@pytest.fixture(scope="session")
def cifar_path() -> Path:
    path = cifar_archive()
    if path is None:
        pytest.skip(
            "CIFAR-10 JPEG archive not found: set GPSBENCH_CIFAR10_ARCHIVE or put ../shared/data/cifar10-jpeg.tar.gz"
        )
    return path


@pytest.fixture(scope="session")
def small_cifar_archive(cifar_path, tmp_path_factory) -> Path:
    """A real ImageFolder .tar.gz: the first 20 train and 5 test JPEGs of every CIFAR-10 class."""
    quota = {"train": 20, "test": 5}
    counts: dict[tuple[str, str], int] = {}
    out = tmp_path_factory.mktemp("archive") / "cifar-small.tar.gz"
    with tarfile.open(cifar_path, "r|gz") as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 4 or parts[-3] not in quota:
                continue
            key = (parts[-3], parts[-2])
            if counts.get(key, 0) >= quota[parts[-3]]:
                continue
            counts[key] = counts.get(key, 0) + 1
            data = src.extractfile(member).read()
            info = tarfile.TarInfo("cifar-small/" + "/".join(parts[-3:]))
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    assert len(counts) == 20, f"expected 10 classes x 2 splits, found {sorted(counts)}"
    return out


@pytest.fixture(scope="session")
def cifar_data_dir(tmp_path_factory) -> Path:
    """One data dir for the session, so the full archive is decoded and cached once."""
    return tmp_path_factory.mktemp("data")


def small_method_args(method: str, width: int, **values) -> dict:
    """CPU-sized method_args for any registered method: `values` where the method has that setting,
    and every other int setting of 256 or more (a head width, a queue, a number of prototypes) set to
    `width`. So the generic tests cover a new method without naming it."""
    import dataclasses

    from benchmark.methods import METHODS

    out = {}
    for field in dataclasses.fields(METHODS.get(method).Params):
        if field.name in values:
            out[field.name] = values[field.name]
        elif type(field.default) is int and field.default >= 256:
            out[field.name] = width
    return out


REAL_DATA_FIXTURES = {"cifar_path", "small_cifar_archive"}


def pytest_collection_modifyitems(config, items):
    """A test that reads the CIFAR-10 archive carries `real_data` (make test-fast leaves it out): one
    that takes the archive's fixtures without the marker stops the collection, naming it."""
    unmarked = [
        item.nodeid
        for item in items
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("real_data") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "mark these @pytest.mark.real_data (they read the CIFAR-10 archive): " + ", ".join(unmarked)
        )
