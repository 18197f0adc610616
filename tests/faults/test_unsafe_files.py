"""No code runs from a file the suite loads: a crafted pickle (whose unpickling would create a marker
file) on every load path is refused with one line, and the marker never appears; what a checkpoint
holds loads with weights_only=True; CIFAR's pickled batches (Python 2's protocol, NumPy 1's names)
load through an unpickler that builds arrays and containers only."""

from __future__ import annotations

import os
import pickle
import socket
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.data import DATASETS
from benchmark.data.base import DataSource
from benchmark.errors import UnsafeFile
from benchmark.rundir import RunDir
from benchmark.train import RunInterrupted, train_run
from tests.faults.test_bad_input import SMALL, Crafted
from tests.sweep.test_run_views import dead_pid

HEADS = {"proj_hidden_dim": 64, "proj_output_dim": 16}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    return out


def test_every_checkpoint_loads_with_weights_only(trained, tmp_path):
    state = torch.load(trained / "checkpoint.pt", weights_only=True)
    assert isinstance(state["augment_order"], tuple) and state["generator"].dtype == torch.uint8
    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "batch_size": 128,
            "epochs": 2,
            "progress": False,
            "method": "nnclr",
            "method_args": {**HEADS, "pred_hidden_dim": 64},
        }
    )
    with pytest.raises(RunInterrupted):  # mid-epoch: the epoch's order and partial loss are saved too
        train_run(config, tmp_path / "mid", interrupt=lambda: True)
    mid = torch.load(tmp_path / "mid" / "checkpoint.pt", weights_only=True)
    assert mid["position"]["step"] == 1 and mid["optimizer"]["state"]


def crafted(path: Path, marker: Path, wrapped: bool = True) -> Path:
    if wrapped:  # a torch file: a zip whose pickle calls os.system
        torch.save({"run_id": "x", "epoch": 1, "method": {"backbone.w": Crafted(marker)}}, path)
    else:
        path.write_bytes(pickle.dumps(Crafted(marker), protocol=2))
    return path


def one_error_line(capfd) -> str:
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("wrapped", [True, False], ids=["torch-zip", "raw-pickle"])
def test_resume_from_a_crafted_checkpoint_is_refused(trained, tmp_path, wrapped, capfd):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("status.json", "config.json"):
        (run / name).write_bytes((trained / name).read_bytes())
    crafted(run / "checkpoint.pt", tmp_path / "MARKER", wrapped)
    assert main(["train", *SMALL, "--epochs", "1", "--resume", "--out", str(run)]) == 2
    assert "checkpoint.pt" in one_error_line(capfd) and not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_a_crafted_weights_file_is_refused(tmp_path, suffix, capfd):
    weights = crafted(tmp_path / f"w{suffix}", tmp_path / "MARKER")
    assert main(["train", *SMALL, "--epochs", "1", "--set", f"weights={weights}", "--out", str(tmp_path / "o")]) == 2
    assert "refused" in one_error_line(capfd) and not (tmp_path / "MARKER").exists()
    assert not (tmp_path / "o").exists()


def test_a_crafted_run_prior_is_refused(trained, tmp_path, capfd):
    prior = tmp_path / "prior-run"
    prior.mkdir()
    (prior / "config.json").write_bytes((trained / "config.json").read_bytes())
    crafted(prior / "checkpoint.pt", tmp_path / "MARKER")
    assert (
        main(
            [
                "train",
                *SMALL,
                "--epochs",
                "1",
                "--prior",
                f"run:{prior}",
                "--k",
                "5",
                "--out",
                str(tmp_path / "o"),
                "--data-dir",
                str(tmp_path / "data"),
            ]
        )
        == 2
    )
    assert "refused" in one_error_line(capfd) and not (tmp_path / "MARKER").exists()


def test_a_sweep_run_whose_checkpoint_is_crafted_fails_with_the_reason(tmp_path, capfd):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        textwrap.dedent("""
        name: s
        grid: {seed: [0]}
        fixed: {dataset: digits, batch_size: 128, epochs: 1, method_args: {proj_hidden_dim: 64, proj_output_dim: 16}}
        wandb: {mode: disabled}
    """)
    )
    from benchmark.sweep.plan import expand
    from benchmark.sweep.spec import load_sweep

    [cell] = expand(load_sweep(path)).cells
    run = RunDir(tmp_path / "r" / "s" / cell.run_id)
    run.write_status("pending", run_id=cell.run_id, attempt=1, host=socket.gethostname(), job_pid=dead_pid())
    crafted(run.checkpoint, tmp_path / "MARKER")
    assert main(["sweep", str(path), "--executor", "debug", "--results-dir", str(tmp_path / "r")]) == 1
    status = run.read_status()
    assert status["state"] == "failed" and "refused" in status["error"] and not (tmp_path / "MARKER").exists()


def write_batches(folder: Path, rows: np.ndarray, labels: list[int], numpy1_names: bool) -> None:
    """CIFAR-10's python batches as pickles of protocol 2 (what Python 2 wrote); with NumPy 1's module
    names, as in the files torchvision downloads."""
    folder.mkdir()

    def dump(value, name: str) -> None:
        data = pickle.dumps(value, protocol=2)
        if numpy1_names:
            data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (folder / name).write_bytes(data)

    for i in range(1, 6):
        dump({"data": rows, "labels": labels, "batch_label": f"batch {i}"}, f"data_batch_{i}")
    dump({"data": rows, "labels": labels}, "test_batch")
    dump({"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": len(labels)}, "batches.meta")


@pytest.mark.parametrize("numpy1_names", [True, False], ids=["numpy1", "numpy2"])
def test_cifar_batches_load_without_the_pickle_machinery(tmp_path, numpy1_names):
    rows = np.random.default_rng(0).integers(0, 256, (20, 3072), dtype=np.uint8)
    write_batches(tmp_path / "cifar-10-batches-py", rows, list(range(10)) * 2, numpy1_names)
    raw = DATASETS.get("cifar10")(DataSource(data_dir=tmp_path, download=False))
    assert raw.train.images.shape == (100, 32, 32, 3) and raw.classes[3] == "c3"
    np.testing.assert_array_equal(raw.test.images[0], rows[0].reshape(3, 32, 32).transpose(1, 2, 0))


def test_a_crafted_cifar_batch_is_refused(tmp_path):
    rows = np.zeros((10, 3072), dtype=np.uint8)
    write_batches(tmp_path / "cifar-10-batches-py", rows, list(range(10)), numpy1_names=True)
    crafted(tmp_path / "cifar-10-batches-py" / "data_batch_3", tmp_path / "MARKER", wrapped=False)
    with pytest.raises(UnsafeFile, match="data_batch_3.*posix.system|data_batch_3.*os.system"):
        DATASETS.get("cifar10")(DataSource(data_dir=tmp_path, download=False))
    assert not (tmp_path / "MARKER").exists() and not os.path.exists("MARKER")
