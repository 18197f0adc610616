"""Numbers as people write them (1e-5, 5E-4, 1.0e-6, .5, inf where it means something) are numbers
wherever a float is expected: run configs, --set, config.json loaded back with --config, sweep files,
tuning spaces, SLURM profiles. PyYAML reads `1e-5` as a string, which is how they used to fail."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import yaml

from benchmark.attempt import config_record
from benchmark.cli import build_parser, config_from_args
from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.methods import METHODS
from benchmark.params import coerce, parse_number
from benchmark.sweep.plan import expand
from benchmark.sweep.profiles import load_profile
from benchmark.sweep.spec import load_sweep
from benchmark.sweep.tuning import load_tune


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-5", 1e-5),
        ("5E-4", 5e-4),
        ("1.0e-6", 1e-6),
        (".5", 0.5),
        ("3.", 3.0),
        ("-2e3", -2000.0),
        ("1_000", 1000.0),
        ("inf", math.inf),
        (".inf", math.inf),
        ("-inf", -math.inf),
    ],
)
def test_numbers_written_as_text_are_numbers(text, value):
    assert parse_number(text) == value and coerce("x", text, float | None) == value


@pytest.mark.parametrize("text", ["abc", "1e", "e5", "1.2.3", "", "nan", ".nan"])
def test_text_that_is_no_number_is_refused(text):
    with pytest.raises(ConfigError, match="x must be float"):
        coerce("x", yaml.safe_load(f"v: {text}")["v"] if text else text, float)


def test_set_takes_every_spelling_and_refuses_meaningless_infinities():
    args = build_parser().parse_args(
        [
            "train",
            "--set",
            "lr=5e-4",
            "--set",
            "weight_decay=1E-5",
            "--set",
            "method_args.temperature=.2",
            "--set",
            "tau=inf",
            "--set",
            "sampling=radius",
            "--set",
            "prior=pixel",
            "--set",
            "k=5",
        ]
    )
    config = config_from_args(args)
    assert (config.lr, config.weight_decay, config.method_args["temperature"]) == (5e-4, 1e-5, 0.2)
    assert config.tau == math.inf  # a ball holding every neighbour
    with pytest.raises(ConfigError, match="lr must be finite"):
        RunConfig.from_dict({"lr": "inf"})


@pytest.mark.parametrize("method", METHODS.names())
def test_config_json_of_every_method_loads_back_with_config(method, tmp_path):
    for values in ({}, {"weight_decay": 1e-5, "lr": 3e-4}):  # the recipe's own numbers, and JSON's 1e-05
        config = RunConfig.from_dict({"dataset": "digits", "method": method, **values})
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config_record(config), indent=2))  # as train writes it
        assert RunConfig.from_yaml(path).run_id == config.run_id
    assert '"weight_decay": 1e-05' in path.read_text()


def test_sweep_tuning_and_profile_files_take_exponents(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        textwrap.dedent("""
        name: s
        grid: {lr: [1e-3, 5E-3], seed: [0]}
        fixed: {dataset: digits, weight_decay: 1e-5, method_args: {temperature: 2e-1}}
        per: {lr: {1e-3: {warmup_epochs: 0}}}
        resources: {mem_gb: 1.5e1}
    """)
    )
    spec = load_sweep(sweep)
    cells = expand(spec).cells
    assert sorted(c.config.lr for c in cells) == [1e-3, 5e-3] and spec.resources.mem_gb == 15.0
    assert {c.config.weight_decay for c in cells} == {1e-5} and cells[0].config.warmup_epochs == 0
    tune = tmp_path / "t.yaml"
    tune.write_text("name: t\nfixed: {dataset: digits}\nspace: {lr: {type: float, low: 1e-5, high: 1e-1, log: true}}\n")
    assert load_tune(tune).space[0].low == 1e-5
    profile = tmp_path / "p.yaml"
    profile.write_text("time_min: 30\nsignal_delay_s: 9e1\n")
    with pytest.raises(ConfigError, match="signal_delay_s must be int"):  # an int stays an int
        load_profile(str(profile))
