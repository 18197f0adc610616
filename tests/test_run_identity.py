"""run_id pinned: ids computed before the identity fields became explicit must never change by accident,
and the set of fields that enter run_id changes only when this file says so."""

import dataclasses

import pytest

from benchmark.config import GPS_ONLY, NEW_KEY, RunConfig, execution, experiment, identity_declared

PINNED = [  # computed with the code of main at 15073a7, before fields declared their side, except where noted
    ({}, "4296fc400276"),
    ({"method": "byol", "epochs": 7, "seed": 3}, "a06d158c5dc2"),
    # was 83bf99639084: CIFAR-10 is normalised with solo-learn's fixed constants since, not estimated ones
    ({"dataset": "cifar10", "method": "vicreg", "aug": "weak", "batch_size": 512}, "02f9301d7ad5"),
    (
        {
            "method": "simclr",
            "aug": "crop",
            "aug_args": {"view2": {"solarize_p": 0.2}},
            "optimizer": "sgd",
            "optimizer_args": {"momentum": 0.8},
            "lr": 0.1,
            "weight_decay": 1e-4,
            "warmup_epochs": 2,
            "warmup_start_lr": 0.0,
        },
        "250f83f85498",  # was 25fb2243a167: SGD decays every tensor since, as solo-learn's (its weight decay 1e-4)
    ),
    ({"prior": "pixel", "k": 5}, "636111ef6ec5"),
    (
        {
            "prior": "pixel",
            "k": 5,
            "prior_args": {"pca_dim": 8},
            "sampling": "radius",
            "tau": 0.5,
            "include_self": True,
            "metric": "cosine",
            "knn_index": "exact",
            "tau_neighbors": 3,
        },
        "227815fe3ce2",
    ),
    ({"prior": "oracle"}, "4759121d3e76"),
    ({"method": "simclr", "method_args": {"temperature": 0.5}, "prior": "oracle", "aug": "weak"}, "e6c84e43c4c1"),
    ({"prior": "pixel", "k": 0, "sampling": "radius"}, "4296fc400276"),  # plain SSL: the default's id
    (
        {
            "subset": 500,
            "image_size": 16,
            "backbone": "small",
            "precision": "fp32",
            "val_fraction": 0.2,
            "val_max": 100,
            "knn_temperature": 0.1,
            "pretrained": False,
        },
        "a0493854137f",
    ),
    (
        {
            "device": "cpu",
            "compile": True,
            "checkpoint_every": 3,
            "eval_every": 1,
            "data_dir": "/x",
            "wandb_mode": "offline",
            "wandb_project": "p",
            "wandb_entity": "e",
            "wandb_group": "g",
            "progress": False,
        },
        "4296fc400276",
    ),  # execution only: the default's id
]

IDENTITY_FIELDS = {
    "dataset",
    "subset",
    "image_size",
    "method",
    "method_args",
    "aug",
    "aug_args",
    "backbone",
    "pretrained",
    "weights",
    "prior",
    "prior_args",
    "k",
    "sampling",
    "sampling_args",  # added later: {} (every rule without settings) leaves run_id out (NEW_KEYS)
    "include_self",
    "tau",
    "tau_neighbors",
    "metric",
    "knn_index",
    "refresh_every",
    "refresh_from",
    "epochs",
    "batch_size",
    "optimizer",
    "optimizer_args",
    "lr",
    "weight_decay",
    "warmup_epochs",
    "warmup_start_lr",
    "precision",
    "seed",
    "val_fraction",
    "val_max",
    "knn_temperature",
    "positives",  # added later: at its default (1) it leaves run_id out (NEW_KEYS)
    "neighbour_view",  # added later: at its legacy value (second) it leaves run_id out
    "online_linear",
    "classifier_lr",
}
GPS_ONLY_FIELDS = {
    "prior_args",
    "neighbour_view",
    "sampling",
    "sampling_args",  # added later: {} (every rule without settings) leaves run_id out (NEW_KEYS)
    "include_self",
    "tau",
    "tau_neighbors",
    "metric",
    "knn_index",
    "refresh_every",
    "refresh_from",
}
# added after the ids above: in run_id only when not at their default
NEW_KEYS = {
    "refresh_every",
    "refresh_from",
    "positives",
    "sampling_args",
    "neighbour_view",
    "online_linear",
    "classifier_lr",
}


@pytest.mark.parametrize("values, run_id", PINNED)
def test_run_ids_of_existing_configs_stay_the_same(values, run_id):
    assert RunConfig.from_dict(values).run_id == run_id


def test_keys_added_later_are_pinned_and_keep_every_default_config_id():
    assert {f.name for f in dataclasses.fields(RunConfig) if f.metadata.get(NEW_KEY)} == NEW_KEYS
    gps = {"prior": "pixel", "k": 5, "epochs": 10}
    assert NEW_KEYS.isdisjoint(RunConfig.from_dict(gps).resolved())
    assert RunConfig.from_dict({**gps, "refresh_every": 2}).run_id != RunConfig.from_dict(gps).run_id


def test_neighbour_view_changes_only_the_ids_of_gps_runs_whose_views_it_changes():
    """`second` is how every GPS run trained before the key existed: those keep their ids. `first` (the
    default) changes a GPS run's id only where its two pipelines differ (an asymmetric recipe at some
    size, or aug_args of one view); plain runs and symmetric pipelines keep theirs."""
    gps_byol = {"method": "byol", "prior": "pixel", "k": 5}
    legacy = RunConfig.from_dict({**gps_byol, "neighbour_view": "second"})
    assert "neighbour_view" not in legacy.resolved()
    assert RunConfig.from_dict(gps_byol).run_id != legacy.run_id
    assert RunConfig.from_dict({"prior": "pixel", "k": 5}).run_id == "636111ef6ec5"  # SimCLR: one pipeline
    assert (
        RunConfig.from_dict({**gps_byol, "aug": "weak"}).run_id
        == RunConfig.from_dict({**gps_byol, "aug": "weak", "neighbour_view": "second"}).run_id
    )
    assert (
        RunConfig.from_dict({"method": "byol"}).run_id
        == RunConfig.from_dict({"method": "byol", "neighbour_view": "second"}).run_id
    )  # plain SSL: no neighbour
    one_view = {"prior": "pixel", "k": 5, "aug_args": {"view2": {"solarize_p": 0.2}}}
    assert RunConfig.from_dict(one_view).run_id != RunConfig.from_dict({**one_view, "neighbour_view": "second"}).run_id


def test_fixed_normalisation_changes_the_ids_of_the_data_sets_that_have_it():
    """The references' constants for CIFAR-10/100, STL-10 and FGVC-Aircraft enter run_id; a data set
    normalised by its own estimates (digits, MedMNIST, a folder) keeps its ids."""
    assert RunConfig.from_dict({}).run_id == "4296fc400276"
    cifar = RunConfig.from_dict({"dataset": "cifar10"})
    assert "normalization" not in cifar.resolved()  # config.json stays loadable with --config
    assert cifar.run_id != RunConfig.from_dict({"dataset": "cifar100"}).run_id


def test_rule_settings_enter_run_id_with_their_defaults_made_explicit():
    hops = {"prior": "pixel", "k": 5, "sampling": "hops"}
    assert RunConfig.from_dict(hops).resolved()["sampling_args"] == {"hops": 1}
    assert RunConfig.from_dict(hops).run_id == RunConfig.from_dict({**hops, "sampling_args": {"hops": 1}}).run_id
    assert RunConfig.from_dict(hops).run_id != RunConfig.from_dict({**hops, "sampling_args": {"hops": 2}}).run_id


def test_data_path_enters_run_id_by_its_content(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"gps-bench pinned content\n")
    assert RunConfig.from_dict({"dataset": "imagefolder", "data_path": str(path)}).run_id == "6506e63ebd1f"


def test_the_fields_in_run_id_are_pinned():
    assert set(RunConfig().result_fields()) == IDENTITY_FIELDS


def test_the_fields_that_count_only_for_gps_are_pinned():
    assert {f.name for f in dataclasses.fields(RunConfig) if f.metadata.get(GPS_ONLY)} == GPS_ONLY_FIELDS
    assert GPS_ONLY_FIELDS <= IDENTITY_FIELDS


def test_fields_added_later_enter_run_id_only_away_from_their_default():
    gps = {"prior": "pixel", "k": 5, "epochs": 10}
    for name, other in (("refresh_every", 2), ("positives", 2)):
        assert name not in RunConfig.from_dict(gps).resolved()
        assert name in RunConfig.from_dict({**gps, name: other}).resolved()


def test_a_field_that_does_not_declare_its_side_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match="fields b must be declared with experiment"):

        @identity_declared
        @dataclasses.dataclass(frozen=True)
        class Half:
            a: int = experiment(0)
            b: int = 1
            c: str = execution("x")

    @identity_declared
    @dataclasses.dataclass(frozen=True)
    class Whole:
        a: int = experiment(0)
        c: str = execution("x")

    assert Whole().a == 0 and Whole().c == "x"
