"""Several problems in one input: one line each, an unknown name with its closest match on its line,
and the valid names of each kind listed once (not once per problem, on one 2,000-character line)."""

from __future__ import annotations

import textwrap

import pytest

from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep

BAD = {"dataset": "digits", "epoch": 3, "learning_rate": 0.1, "batchsize": 64, "backbone_name": "resnet18"}


def test_four_unknown_config_keys_take_four_lines_and_list_the_valid_keys_once():
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(BAD)
    lines = str(err.value).split("\n")
    assert lines[:5] == [
        "the config has 4 problems:",
        "  - unknown config key 'epoch' (did you mean 'epochs'?)",
        "  - unknown config key 'learning_rate'",
        "  - unknown config key 'batchsize' (did you mean 'batch_size'?)",
        "  - unknown config key 'backbone_name' (did you mean 'backbone'?)",
    ]
    assert len(lines) == 6 and lines[5].startswith("  config key must be one of: aug, aug_args, backbone, ")
    assert str(err.value).count("warmup_start_lr") == 1


def test_one_unknown_key_is_one_line_with_its_closest_match_and_the_valid_keys():
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"epoch": 3})
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("unknown config key 'epoch' (did you mean 'epochs'?); valid: aug, aug_args,")


def test_cli_prints_one_line_per_problem(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("".join(f"{key}: {value}\n" for key, value in BAD.items()))
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert err[0] == "gpsbench: error: the config has 4 problems:" and len(err) == 6
    assert err[1] == "  - unknown config key 'epoch' (did you mean 'epochs'?)"
    assert sum(line.count("weight_decay") for line in err) == 1


def test_sweep_lists_each_kind_of_valid_name_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent("""
        name: bad
        grid: {seed: [0], methd: [simclr]}
        fixed: {dataset: digits, epoch: 2, batchsize: 64}
        per: {sed: {0: {epochs: 1}}}
    """)
    )
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    lines = str(err.value).split("\n")
    assert lines[0] == f"sweep file {str(path)!r} has 4 problems:"
    assert lines[1:5] == [
        "  - grid: unknown config key 'methd' (did you mean 'method'?)",
        "  - fixed: unknown config key 'epoch' (did you mean 'epochs'?)",
        "  - fixed: unknown config key 'batchsize' (did you mean 'batch_size'?)",
        "  - per: unknown grid axis 'sed' (did you mean 'seed'?)",
    ]
    assert lines[5].startswith("  config key must be one of: aug,") and lines[6] == "  grid axis must be one of: seed"
    assert len(lines) == 7


def test_unknown_values_in_grid_cells_list_the_valid_choices_once(tmp_path):
    path = tmp_path / "cells.yaml"
    path.write_text("name: cells\ngrid: {method: [simclrr, byoll, simclr], seed: [0, 1]}\nfixed: {dataset: digits}\n")
    with pytest.raises(ConfigError) as err:
        expand(load_sweep(path))
    lines = str(err.value).split("\n")
    assert lines[0] == "sweep 'cells' has 2 problems:"
    assert lines[1] == "  - unknown method 'simclrr' (did you mean 'simclr'?) (in 2 cells, e.g. method=simclrr seed=0)"
    assert lines[2] == "  - unknown method 'byoll' (did you mean 'byol'?) (in 2 cells, e.g. method=byoll seed=0)"
    assert lines[3].startswith("  method must be one of: ") and "simclr" in lines[3] and len(lines) == 4
