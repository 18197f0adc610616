"""`gpsbench perf`'s data path against the DataLoader per method recipe (benchmark/perf/datapath.py):
the methods grouped by the pipelines they resolve to, each group measured once, both ways."""

from __future__ import annotations

import pytest
import torch

from benchmark.config import RunConfig
from benchmark.data import load_dataset
from benchmark.perf.datapath import format_recipes, recipe_figures, recipe_groups


def test_methods_are_grouped_by_the_pipelines_their_recipe_gives():
    groups = {tuple(methods) for methods, _ in recipe_groups("strong", {}, 32)}
    assert groups == {("barlow", "byol", "dino", "mocov3", "nnclr"), ("simclr",), ("simsiam",), ("vicreg",)}
    assert [methods for methods, _ in recipe_groups("weak", {}, 32)] == [
        ["barlow", "byol", "dino", "mocov3", "nnclr", "simclr", "simsiam", "vicreg"]
    ]
    asymmetric = dict((tuple(m), pair) for m, pair in recipe_groups("strong", {}, 32))[
        ("barlow", "byol", "dino", "mocov3", "nnclr")
    ]
    assert asymmetric.view2.solarize_p == 0.2 and asymmetric.view1.solarize_p == 0.0  # both views measured


@pytest.mark.slow
def test_each_recipe_is_measured_as_data_path_and_dataloader(tmp_path):
    data = load_dataset("digits", data_dir=tmp_path)
    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "backbone": "small",
            "batch_size": 64,
            "prior": "pixel",
            "k": 5,
            "data_dir": str(tmp_path),
        }
    )
    rows = recipe_figures(config, data, torch.device("cpu"), quick=True, workers=0)
    assert [row["methods"][0] for row in rows] == ["barlow", "simclr", "simsiam", "vicreg"]
    for row in rows:
        assert row["data_pipeline"] > 0 and row["dataloader"] > 0
        assert row["data_pipeline_vs_dataloader"] == row["data_pipeline"] / row["dataloader"]
        assert row["source"].startswith("solo-learn scripts/pretrain/cifar/")  # the recipe file of its pipelines
    lines = format_recipes(rows)
    assert len(lines) == 5 and "barlow, byol, dino, mocov3, nnclr" in lines[1]
