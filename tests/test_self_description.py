"""Priors and sampling rules say what they are (plain, needs k, uses labels; needs a radius) and every
consumer reads it from them: flipping a class's attribute changes the config, the sampler and the
tables, with no name involved. docs/gps.md's tables of priors and rules match the registries."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.neighbors import SAMPLING_RULES, sampling_args
from benchmark.pairing import build_sampler
from benchmark.priors import PRIORS
from benchmark.priors.simple import PixelPrior
from benchmark.results import build_table, to_markdown, variant
from benchmark.sweep.plan import drop_k_without_prior
from tests.docs_tables import names, table

CPU = torch.device("cpu")


def test_the_docs_list_every_prior_and_every_sampling_rule():
    specs = [spec for row in table("docs/gps.md", "## Priors") for spec in names(row)]
    assert sorted(spec.split(":")[0] for spec in specs) == PRIORS.names()
    with_arg = {spec.split(":")[0] for spec in specs if ":" in spec}
    assert with_arg == {name for name in PRIORS.names() if PRIORS.get(name).needs_arg}
    rules = {re.match(r"`([^`]+)`", row).group(1): row for row in table("docs/gps.md", "## Sampling rules", cells=2)}
    assert sorted(rules) == SAMPLING_RULES.names()
    assert {name for name, row in rules.items() if "`tau`" in row} == {
        name for name in SAMPLING_RULES.names() if SAMPLING_RULES.get(name).needs_radius
    }


def frame(prior: str) -> pd.DataFrame:
    rows = [("none", 0, 0.50), (prior, 5, 0.90)]
    return pd.DataFrame(
        [
            {
                "method": "simclr",
                "prior_label": p,
                "k": k,
                "dataset": "digits",
                "aug": "weak",
                "seed": seed,
                "linear_acc": acc,
            }
            for p, k, acc in rows
            for seed in (0, 1)
        ]
    )


def test_a_prior_that_uses_labels_is_named_so_and_never_the_best(monkeypatch):
    counts = {"done": 4, "failed": 0, "corrupt": 0, "missing": 0, "planned": 4, "planned_seeds": 2}
    assert "| GPS-SimCLR (pixel) | **90.00 ± 0.00** |" in to_markdown(build_table(frame("pixel"), counts))
    monkeypatch.setattr(PixelPrior, "uses_labels", True)
    table = to_markdown(build_table(frame("pixel"), counts))
    assert "| GPS-SimCLR (pixel: uses labels) | 90.00 ± 0.00 |" in table and "| SimCLR | **50.00 ± 0.00** |" in table


def test_a_prior_that_needs_no_k_is_gps_at_k_0(monkeypatch):
    assert not RunConfig.from_dict({"prior": "pixel"}).is_gps and variant("simclr", "pixel", 0) == "SimCLR"
    monkeypatch.setattr(PixelPrior, "needs_k", False)
    assert RunConfig.from_dict({"prior": "pixel"}).is_gps and variant("simclr", "pixel", 0) == "GPS-SimCLR (pixel)"


def test_a_plain_prior_takes_no_k(monkeypatch):
    assert RunConfig.from_dict({"prior": "pixel", "k": 5}).is_gps
    monkeypatch.setattr(PixelPrior, "plain", True)
    with pytest.raises(ConfigError, match="k=5 needs a prior to find neighbours in; prior is 'pixel'"):
        RunConfig.from_dict({"prior": "pixel", "k": 5})
    assert drop_k_without_prior({"prior": "pixel", "k": 5})["k"] == 0
    assert variant("simclr", "pixel", 5) == "SimCLR"


REQUIRED_SETTINGS = {"kmeans-cluster": {"clusters": 4}}  # rules whose settings have no default


@pytest.mark.parametrize("rule", SAMPLING_RULES.names())
def test_a_rule_that_needs_a_radius_gets_tau_and_its_neighbour_columns(rule, tmp_path, one_thread):
    data = load_dataset("synthetic", data_dir=tmp_path / "data")
    settings = REQUIRED_SETTINGS.get(rule, {})
    config = RunConfig.from_dict(
        {
            "dataset": "synthetic",
            "prior": "pixel",
            "k": 2,
            "tau_neighbors": 7,
            "sampling": rule,
            "sampling_args": settings,
        }
    )
    setup = build_sampler(config, data, CPU, cache_root=tmp_path, results_dir=tmp_path)
    found = SAMPLING_RULES.get(rule)
    assert (setup.report["tau"] is not None) == found.needs_radius
    # the table holds the columns the rule reads: k, tau_neighbors for a radius, a wider pool (at most N - 1)
    wanted = min(found.columns(2, sampling_args(rule, settings)), len(data.pretrain) - 1)
    wanted = max(wanted, 7 if found.needs_radius else 2)
    assert [p.stem.rsplit("-", 1)[1] for p in (tmp_path / "neighbors").glob("*.npz")] == [f"K{wanted}"]
