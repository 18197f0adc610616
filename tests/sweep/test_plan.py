"""Sweep files -> plans: validation (every problem named, exit 2, nothing written), expansion with
`fixed`/`per`/`exclude`, `run:` priors, collapsing, and run_id stability."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from benchmark.cli import main
from benchmark.errors import ConfigError
from benchmark.methods import METHODS
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep, parse_sweep
from tests.conftest import REPO

BASE = {"name": "t", "grid": {"method": ["simclr", "byol"], "seed": [0, 1]}, "fixed": {"dataset": "digits"}}


def plan_of(**changes):
    return expand(parse_sweep({**BASE, **changes}))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BAD_SWEEPS = [
    ("grids: {seed: [0]}\n", ["unknown sweep key 'grids'", "did you mean 'grid'"]),
    ("grid: {seed: [0]}\nfixed: {epoch: 3}\n", ["unknown config key 'epoch'", "did you mean 'epochs'"]),
    ("grid: {method: [simclr, simclrr]}\n", ["unknown method 'simclrr'", "valid: " + ", ".join(METHODS.names())]),
    ("grid: {seed: []}\n", ["grid.seed is empty"]),
    ("grid: {seed: 3}\n", ["grid.seed must be a list", "int"]),
    ("grid: {seed: [0]}\nfixed: {epochs: ten}\n", ["epochs must be int", "'ten'"]),
    ("grid: {aug: [weak, strongest]}\n", ["unknown augmentation 'strongest'", "valid: crop, none, strong, weak"]),
    (
        "grid: {method: [simclr, byol], aug: [weak, strong], prior: [none, 'run:method=simclr,aug=strong']}\n"
        "exclude: [{method: simclr, aug: strong, prior: none}]\n",
        ["names no cell of the sweep"],
    ),
    ("grid: {method: [simclr], prior: [none, 'run:method=vicreg']}\n", ["'vicreg' is not on axis method"]),
    (
        "grid: {method: [simclr]}\nper: {dataset: {digits: {epochs: 3}}}\n",
        ["unknown grid axis 'dataset'", "valid: method"],
    ),
    ("grid: {method: [simclr]}\nper: {method: {vicreg: {lr: 0.1}}}\n", ["value 'vicreg' is not on the axis", "simclr"]),
    ("grid: {method: [simclr]}\nexclude: [{method: byol}]\n", ["value 'byol' is not on axis method"]),
    ("grid: {seed: [0]}\nresources: {gpu: 1}\n", ["unknown resources key for a sweep 'gpu'", "gpus"]),
    ("grid: {seed: [0]}\nwandb: {mode: offlne}\n", ["unknown wandb.mode 'offlne'", "offline"]),
    ("grid: {method: [simclr]}\nfixed: {method: byol}\n", ["fixed.method is also a grid axis"]),
    ("name: 'my sweep/1'\ngrid: {seed: [0]}\n", ["name must be a folder name"]),
    ("grid: {seed: [0}\n", ["not valid YAML"]),
    ("grid: {seed: [0, 1]}\nexclude: [{seed: [0, 1]}]\n", ["every cell of the grid is excluded"]),
    ("grid: {seed: [0]}\nfixed: {prior: none, k: 5, lr: -1}\n", ["lr must be >= 0, got -1.0"]),
    ("grid: {foo.bar: [1]}\n", ["dotted key 'foo.bar' must start with one of method_args"]),
    ("grid: {seed: [0]}\nresources: {timeout_min: 0}\n", ["resources.timeout_min must be >= 1"]),
]


@pytest.mark.parametrize("text, fragments", BAD_SWEEPS, ids=[f"bad{i}" for i in range(len(BAD_SWEEPS))])
def test_bad_sweep_files_exit_2_naming_the_problem_and_write_nothing(text, fragments, tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["sweep", str(write(tmp_path, text)), "--executor", "debug", "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not results.exists()


def test_all_problems_of_a_file_are_reported_together(tmp_path, capsys):
    text = "grid: {method: [simclrr], seed: []}\nfixed: {epoch: 3}\nresources: {gpu: 1}\nwandb: {mode: x}\n"
    assert main(["sweep", str(write(tmp_path, text)), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "has 4 problems" in err
    for fragment in ("grid.seed is empty", "'epoch'", "'gpu'", "wandb.mode"):
        assert fragment in err


def test_a_problem_shared_by_many_cells_is_reported_once_with_a_count():
    with pytest.raises(ConfigError) as err:
        plan_of(per={"method": {"byol": {"lr": -1}}})
    message = str(err.value)
    assert message.count("lr must be >= 0") == 1 and "in 2 cells, e.g. method=byol seed=0" in message


def test_missing_sweep_file_names_the_shipped_ones(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["sweep", "sweeps/digitz.yaml", "--dry-run"]) == 2
    shipped = ", ".join(sorted(path.name for path in (REPO / "sweeps").glob("*.yaml")))
    assert f"does not exist; sweeps here: {shipped}" in capsys.readouterr().err


def test_grid_expands_in_axis_order_with_fixed_per_and_overrides():
    plan = expand(
        parse_sweep(
            {
                **BASE,
                "fixed": {"dataset": "digits", "epochs": 7, "method_args": {"proj_output_dim": 32}},
                "per": {"method": {"byol": {"epochs": 9, "method_args": {"tau_base": 0.9}}}},
            }
        ),
        overrides=["batch_size=64"],
    )
    assert [c.label for c in plan.cells] == [
        "method=simclr seed=0",
        "method=simclr seed=1",
        "method=byol seed=0",
        "method=byol seed=1",
    ]
    simclr, byol = plan.cells[0].config, plan.cells[2].config
    assert (simclr.epochs, byol.epochs) == (7, 9) and simclr.batch_size == byol.batch_size == 64
    assert byol.method_args == {"proj_output_dim": 32, "tau_base": 0.9}  # per merges into fixed's args
    assert plan.cells[3].tags == ["method=byol", "seed=1"]
    assert len({c.run_id for c in plan.cells}) == 4


def test_exclude_skips_matching_cells_and_axis_values_win_over_lists():
    plan = plan_of(exclude=[{"method": "byol", "seed": [1]}])
    assert plan.excluded == 1 and [c.label for c in plan.cells][-1] == "method=byol seed=0"


def test_prior_none_drops_k_and_identical_runs_collapse():
    plan = plan_of(grid={"prior": ["none", "pixel"], "k": [3, 5]})
    assert plan.grid_size == 4 and plan.collapsed == 1 and len(plan.cells) == 3
    none = [c for c in plan.cells if c.axes["prior"] == "none"]
    assert len(none) == 1 and none[0].config.k == 0


def test_run_prior_names_the_source_cell_and_runs_after_it():
    plan = plan_of(
        grid={
            "method": ["simclr", "byol"],
            "aug": ["weak", "strong"],
            "prior": ["none", "run:method=simclr,aug=strong"],
            "seed": [0, 1],
        },
        fixed={"dataset": "digits", "k": 5},
    )
    by_label = {c.label: c for c in plan.cells}
    source = by_label["method=simclr aug=strong prior=none seed=1"]
    dependent = by_label["method=byol aug=weak prior=run:method=simclr,aug=strong seed=1"]
    assert dependent.depends_on == source.run_id and dependent.config.prior == f"run:{source.run_id}"
    order = [c.run_id for c in plan.cells]
    assert all(order.index(c.depends_on) < order.index(c.run_id) for c in plan.cells if c.depends_on)
    assert sum(c.depends_on is not None for c in plan.cells) == 8


def test_run_id_is_stable_across_processes_and_key_order():
    spec = load_sweep(REPO / "sweeps/digits.yaml")
    ids = [c.run_id for c in expand(spec).cells]
    script = (
        "import json, sys; from benchmark.sweep.plan import expand; from benchmark.sweep.spec import load_sweep;"
        "print(json.dumps([c.run_id for c in expand(load_sweep(sys.argv[1])).cells]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "sweeps/digits.yaml")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        cwd=REPO,
    ).stdout
    assert json.loads(out) == ids
    raw = yaml.safe_load((REPO / "sweeps/digits.yaml").read_text())
    reordered = {key: raw[key] for key in reversed(list(raw))}
    reordered["fixed"] = {key: raw["fixed"][key] for key in reversed(list(raw["fixed"]))}
    assert [c.run_id for c in expand(parse_sweep(reordered)).cells] == ids


def test_run_id_changes_with_what_changes_the_result_only():
    base = {c.label: c.run_id for c in plan_of().cells}
    same = plan_of(
        fixed={
            "dataset": "digits",
            "device": "cpu",
            "data_dir": "/elsewhere",
            "wandb_mode": "offline",
            "checkpoint_every": 3,
            "progress": False,
        }
    )
    assert {c.label: c.run_id for c in same.cells} == base
    for change in ({"lr": 0.5}, {"epochs": 3}, {"aug_args": {"flip_p": 0.0}}, {"subset": 500}):
        changed = plan_of(fixed={"dataset": "digits", **change})
        assert not set(c.run_id for c in changed.cells) & set(base.values()), change


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_and_tuning_file_is_valid(path):
    if path.name.startswith("tune-"):
        from benchmark.sweep.tuning import load_tune

        assert load_tune(path).name == path.stem
        return
    plan = expand(load_sweep(path))
    assert plan.cells and plan.spec.name == path.stem


def test_a_tuning_file_given_to_sweep_says_so(capsys):
    assert main(["sweep", str(REPO / "sweeps/tune-digits.yaml"), "--dry-run"]) == 2
    assert "is a tuning file (it has a search space): run gpsbench tune" in capsys.readouterr().err


def test_paper_cifar10_grid_has_its_cells():
    plan = expand(load_sweep(REPO / "sweeps/cifar10.yaml"))
    assert plan.spec.grid["method"] == ["simclr", "byol", "nnclr", "vicreg", "barlow"]
    assert set(plan.spec.grid["aug"]) == {"weak", "strong"} and plan.spec.grid["seed"] == [0, 1, 2]
    dependents = [c for c in plan.cells if c.depends_on]
    assert dependents and all(
        plan.by_id[c.depends_on].axes["method"] == "simclr" and plan.by_id[c.depends_on].axes["aug"] == "strong"
        for c in dependents
    )
    assert plan.spec.resources.gpus == 1 and all(c.config.epochs == 200 for c in plan.cells)
