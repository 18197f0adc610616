"""Identity from content: a `weights` file, a local `prior_args.weights` file and a `run:<dir>` prior's
checkpoint enter run_id by a checksum of their bytes (a replaced file is a new run; one file at two
paths is one run), while every config that uses none of them keeps its run_id (test_run_identity.py
pins eleven). A `run:` source of a sweep is looked up in that sweep's folder only, and a source named
by its run_id must hold that run's checkpoint."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep


def weights(path: Path, value: float) -> Path:
    torch.save({"features.0.weight": torch.full((4, 3, 3, 3), value)}, path)
    return path


def run_id(**values) -> str:
    return RunConfig.from_dict(values).run_id


def test_a_weights_file_counts_by_its_content_not_its_path(tmp_path):
    first = weights(tmp_path / "w.pt", 0.5)
    before = run_id(backbone="small", weights=str(first))
    shutil.copy(first, tmp_path / "elsewhere.pt")
    assert run_id(backbone="small", weights=str(tmp_path / "elsewhere.pt")) == before  # one content, one run
    weights(first, 0.25)  # replaced in place
    assert run_id(backbone="small", weights=str(first)) != before
    assert run_id(backbone="small") != before


def test_a_local_prior_weights_file_counts_by_its_content(tmp_path):
    path = weights(tmp_path / "prior.pt", 0.5)
    spec = {"prior": "timm:resnet18", "k": 5}
    before = run_id(**spec, prior_args={"weights": str(path)})
    weights(path, 0.75)
    assert run_id(**spec, prior_args={"weights": str(path)}) != before
    downloaded = {"weights": "torchvision:IMAGENET1K_V1"}  # not a file: its name is its identity, as before
    assert run_id(**spec, prior_args=downloaded) == run_id(**spec, prior_args=downloaded)


def test_a_run_dir_prior_counts_by_its_checkpoint_and_a_run_id_by_itself(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    weights(source / "checkpoint.pt", 0.5)
    before = run_id(prior=f"run:{source}", k=3)
    shutil.copytree(source, tmp_path / "moved")
    assert run_id(prior=f"run:{tmp_path / 'moved'}", k=3) == before
    weights(source / "checkpoint.pt", 0.125)  # the source trained again, or another run's checkpoint put there
    assert run_id(prior=f"run:{source}", k=3) != before
    # a run_id names its source's content already (config and data), as a sweep's cells do: its id is the
    # one it always had (computed before identity by content, with no such run anywhere)
    assert run_id(prior="run:0123456789ab", k=3) == "eff8749654ae"
    assert run_id(prior="none", k=0) == "4296fc400276"  # the pinned default, untouched


def test_a_missing_weights_file_is_one_line_before_anything_runs(tmp_path, capfd):
    assert main(["train", "--set", f"weights={tmp_path / 'none.pt'}", "--out", str(tmp_path / "run")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weights file" in err[0] and "none.pt" in err[0] and "does not exist" in err[0]
    assert not (tmp_path / "run").exists()


SWEEP = """
    name: {name}
    grid: {{prior: [none, "run:seed=0"], seed: [0]}}
    fixed: {{dataset: digits, subset: 300, batch_size: 64, epochs: 1, progress: false, backbone: small,
            method_args: {{proj_hidden_dim: 32, proj_output_dim: 16}}}}
    per: {{prior: {{"run:seed=0": {{k: 3}}}}}}
    wandb: {{mode: disabled}}
"""


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory) -> tuple[Path, str, str]:
    """Sweeps `a` and `b` of the same cells (a source and a run whose prior is it) in one results
    folder; `a` trained, then its source's checkpoint cut short; then `b` trained."""
    root = tmp_path_factory.mktemp("sweeps")
    for name in ("a", "b"):
        (root / f"{name}.yaml").write_text(textwrap.dedent(SWEEP.format(name=name)))
    source, dependent = (cell.run_id for cell in expand(load_sweep(root / "a.yaml")).cells)
    assert main(["sweep", str(root / "a.yaml"), "--executor", "debug", "--results-dir", str(root / "r")]) == 0
    checkpoint = root / "r" / "a" / source / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # sweep a's copy of the source is damaged
    assert main(["sweep", str(root / "b.yaml"), "--executor", "debug", "--results-dir", str(root / "r")]) == 0
    return root, source, dependent


def test_a_sweeps_run_source_is_looked_up_in_that_sweeps_folder_only(two_sweeps):
    root, source, dependent = two_sweeps
    result = json.loads((root / "r" / "b" / dependent / "result.json").read_text())
    assert result["run_id"] == dependent and result["prior"] == f"run:{source}"


def test_a_source_named_by_its_run_id_must_hold_that_runs_checkpoint(two_sweeps, tmp_path, monkeypatch, capfd):
    root, source, dependent = two_sweeps
    elsewhere = tmp_path / "r" / "other" / source
    shutil.copytree(root / "r" / "b" / source, elsewhere)
    shutil.copy(root / "r" / "b" / dependent / "checkpoint.pt", elsewhere / "checkpoint.pt")  # another run's weights
    monkeypatch.setenv("GPSBENCH_RESULTS", str(tmp_path / "r"))
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    args = ["--dataset", "digits", "--subset", "300", "--backbone", "small", "--prior", f"run:{source}", "--k", "3"]
    assert main(["prior", *args]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"holds run {dependent}'s weights, not those of the source run {source}" in err[0]
