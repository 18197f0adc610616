"""Every reference-recipe value pinned against the file it comes from, docs/training.md's recipe table against
the recipes, and the fairness rule: a GPS cell and its plain twin train with the same recipe, each view
through the pipeline the official code gives it.

The values below were read from vturrisi/solo-learn at 9187ea3 (the official GPS code,
aarashfeizi/gps-ssl, carries the same CIFAR files); changing a recipe means changing this table too.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from benchmark.augment import LARGE_IMAGE_SIZE, StrongRecipe, ViewPair, resolve_aug_params, run_views
from benchmark.config import RunConfig
from benchmark.methods import METHODS
from benchmark.optim import LARSParams, resolve_optim
from benchmark.recipe_table import recipe_table, views_table
from tests.conftest import REPO, small_method_args

CIFAR = "scripts/pretrain/cifar"

# (method, value name, value, source file in solo-learn)
OPTIMISER_VALUES = [
    ("simclr", "lr", 0.4, f"{CIFAR}/simclr.yaml"),
    ("simclr", "weight_decay", 1e-4, f"{CIFAR}/simclr.yaml"),
    ("byol", "lr", 1.0, f"{CIFAR}/byol.yaml"),
    ("byol", "weight_decay", 1e-5, f"{CIFAR}/byol.yaml"),
    ("nnclr", "lr", 0.4, f"{CIFAR}/nnclr.yaml"),
    ("nnclr", "weight_decay", 1e-5, f"{CIFAR}/nnclr.yaml"),
    ("vicreg", "lr", 0.3, f"{CIFAR}/vicreg.yaml"),
    ("vicreg", "weight_decay", 1e-4, f"{CIFAR}/vicreg.yaml"),
    ("barlow", "lr", 0.3, f"{CIFAR}/barlow.yaml"),
    ("barlow", "weight_decay", 1e-4, f"{CIFAR}/barlow.yaml"),
    ("simsiam", "optimizer", "sgd", f"{CIFAR}/simsiam.yaml"),
    ("simsiam", "lr", 0.5, f"{CIFAR}/simsiam.yaml"),
    ("simsiam", "weight_decay", 1e-5, f"{CIFAR}/simsiam.yaml"),
    ("mocov3", "optimizer", "lars", f"{CIFAR}/mocov3.yaml"),
    ("mocov3", "lr", 0.3, f"{CIFAR}/mocov3.yaml"),
    ("mocov3", "weight_decay", 1e-6, f"{CIFAR}/mocov3.yaml"),
    ("dino", "optimizer", "lars", f"{CIFAR}/dino.yaml"),
    ("dino", "lr", 0.3, f"{CIFAR}/dino.yaml"),
    ("dino", "weight_decay", 1e-6, f"{CIFAR}/dino.yaml"),
] + [(m, "optimizer", "lars", f"{CIFAR}/{m}.yaml") for m in ("simclr", "byol", "nnclr", "vicreg", "barlow")]
# every CIFAR recipe: optimizer name lars, batch_size 256, kwargs clip_lr True, eta 0.02, exclude_bias_n_norm True
LARS_VALUES = {"eta": 0.02, "clip_lr": True, "exclude_bias_n_norm": True}
SCHEDULE_VALUES = {"warmup_epochs": 10, "warmup_start_lr": 3e-5}  # solo/methods/base.py defaults
MOMENTUM = 0.9  # solo/args/pretrain.py: lars momentum default

HEAD_AND_LOSS_VALUES = [
    ("simclr", "proj_hidden_dim", 2048, f"{CIFAR}/simclr.yaml"),
    ("simclr", "proj_output_dim", 256, f"{CIFAR}/simclr.yaml"),
    ("simclr", "temperature", 0.2, f"{CIFAR}/simclr.yaml"),
    ("byol", "proj_hidden_dim", 4096, f"{CIFAR}/byol.yaml"),
    ("byol", "proj_output_dim", 256, f"{CIFAR}/byol.yaml"),
    ("byol", "pred_hidden_dim", 4096, f"{CIFAR}/byol.yaml"),
    ("byol", "tau_base", 0.99, f"{CIFAR}/byol.yaml"),
    ("byol", "tau_final", 1.0, f"{CIFAR}/byol.yaml"),
    ("nnclr", "proj_hidden_dim", 2048, f"{CIFAR}/nnclr.yaml"),
    ("nnclr", "proj_output_dim", 256, f"{CIFAR}/nnclr.yaml"),
    ("nnclr", "pred_hidden_dim", 4096, f"{CIFAR}/nnclr.yaml"),
    ("nnclr", "queue_size", 65536, f"{CIFAR}/nnclr.yaml"),
    ("nnclr", "temperature", 0.2, f"{CIFAR}/nnclr.yaml"),
    ("vicreg", "proj_hidden_dim", 2048, f"{CIFAR}/vicreg.yaml"),
    ("vicreg", "proj_output_dim", 2048, f"{CIFAR}/vicreg.yaml"),
    ("vicreg", "sim_weight", 25.0, f"{CIFAR}/vicreg.yaml"),
    ("vicreg", "var_weight", 25.0, f"{CIFAR}/vicreg.yaml"),
    ("vicreg", "cov_weight", 1.0, f"{CIFAR}/vicreg.yaml"),
    ("vicreg", "variance_reduction", "sum", "solo/losses/vicreg.py"),
    ("barlow", "proj_hidden_dim", 2048, f"{CIFAR}/barlow.yaml"),
    ("barlow", "proj_output_dim", 2048, f"{CIFAR}/barlow.yaml"),
    ("barlow", "scale_loss", 0.1, f"{CIFAR}/barlow.yaml"),
    ("barlow", "lambd", 0.0051, "solo/methods/barlow_twins.py"),
    ("simsiam", "proj_hidden_dim", 2048, f"{CIFAR}/simsiam.yaml"),
    ("simsiam", "proj_output_dim", 2048, f"{CIFAR}/simsiam.yaml"),
    ("simsiam", "pred_hidden_dim", 512, f"{CIFAR}/simsiam.yaml"),
    ("mocov3", "proj_hidden_dim", 4096, f"{CIFAR}/mocov3.yaml"),
    ("mocov3", "proj_output_dim", 256, f"{CIFAR}/mocov3.yaml"),
    ("mocov3", "pred_hidden_dim", 4096, f"{CIFAR}/mocov3.yaml"),
    ("mocov3", "temperature", 0.2, f"{CIFAR}/mocov3.yaml"),
    ("mocov3", "tau_base", 0.99, f"{CIFAR}/mocov3.yaml"),
    ("mocov3", "tau_final", 1.0, f"{CIFAR}/mocov3.yaml"),
    ("dino", "proj_hidden_dim", 2048, f"{CIFAR}/dino.yaml"),
    ("dino", "proj_output_dim", 256, f"{CIFAR}/dino.yaml"),
    ("dino", "num_prototypes", 4096, f"{CIFAR}/dino.yaml"),
    ("dino", "tau_base", 0.9995, f"{CIFAR}/dino.yaml"),
    ("dino", "tau_final", 1.0, f"{CIFAR}/dino.yaml"),
    ("dino", "student_temperature", 0.1, "solo/methods/dino.py"),
    ("dino", "teacher_temperature", 0.07, "solo/methods/dino.py"),
    ("dino", "warmup_teacher_temperature", 0.04, "solo/methods/dino.py"),
    ("dino", "warmup_teacher_temperature_epochs", 0, "solo/methods/dino.py"),
    ("dino", "freeze_last_layer", 1, "solo/methods/dino.py"),
    ("dino", "center_momentum", 0.9, "solo/losses/dino.py"),
] + [(m, "bn_per_view", True, "solo/methods/base.py") for m in METHODS.names()]

_ASYMMETRIC = {
    "crop": True,
    "crop_scale": (0.08, 1.0),
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.2,
    "hue": 0.1,
    "grayscale_p": 0.2,
    "blur_p": 0.0,
    "flip_p": 0.5,
}
_SYMMETRIC = {
    "crop": True,
    "crop_scale": (0.08, 1.0),
    "jitter_p": 0.8,
    "brightness": 0.8,
    "contrast": 0.8,
    "saturation": 0.8,
    "hue": 0.2,
    "grayscale_p": 0.2,
    "blur_p": 0.5,
    "solarize_p": 0.0,
    "flip_p": 0.5,
}
_SYMMETRIC_WEAK = {**_SYMMETRIC, "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}
_VICREG = {
    "crop": True,
    "crop_scale": (0.2, 1.0),
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.2,
    "hue": 0.1,
    "grayscale_p": 0.2,
    "blur_p": 0.0,
    "solarize_p": 0.1,
    "flip_p": 0.5,
}
# (method, image size, view 1, view 2, source file): the strong DA of each method
STRONG_VALUES = [
    ("simclr", 32, _SYMMETRIC, _SYMMETRIC, f"{CIFAR}/augmentations/symmetric.yaml"),
    ("simclr", 96, _SYMMETRIC, _SYMMETRIC, "scripts/pretrain/imagenet-100/augmentations/symmetric.yaml"),
    ("vicreg", 32, _VICREG, _VICREG, f"{CIFAR}/vicreg.yaml"),
    ("simsiam", 32, _SYMMETRIC_WEAK, _SYMMETRIC_WEAK, f"{CIFAR}/augmentations/symmetric_weak.yaml"),
    (
        "vicreg",
        96,
        {**_VICREG, "blur_p": 0.5},
        {**_VICREG, "blur_p": 0.5},
        "scripts/pretrain/imagenet-100/augmentations/vicreg.yaml",
    ),
]
_ASYMMETRIC_METHODS = ("byol", "nnclr", "barlow", "simsiam", "mocov3", "dino")  # simsiam: ImageNet-100 only
STRONG_VALUES += [
    (
        m,
        32,
        {**_ASYMMETRIC, "solarize_p": 0.0},
        {**_ASYMMETRIC, "solarize_p": 0.2},
        f"{CIFAR}/augmentations/asymmetric.yaml",
    )
    for m in _ASYMMETRIC_METHODS
    if m != "simsiam"
] + [
    (
        m,
        96,
        {**_ASYMMETRIC, "blur_p": 1.0, "solarize_p": 0.0},
        {**_ASYMMETRIC, "blur_p": 0.1, "solarize_p": 0.2},
        "scripts/pretrain/imagenet-100/augmentations/asymmetric.yaml",
    )
    for m in _ASYMMETRIC_METHODS
]


def strong_of(method: str) -> StrongRecipe:
    return METHODS.get(method).recipe.strong


def optim_of(config: RunConfig) -> dict:
    """The config's optimiser settings, its method's recipe for its data handed in as train hands it."""
    return resolve_optim(config, config.recipe)


def test_the_pinned_tables_cover_every_method():
    for table in (OPTIMISER_VALUES, HEAD_AND_LOSS_VALUES, STRONG_VALUES):
        assert {row[0] for row in table} == set(METHODS.names())


@pytest.mark.parametrize("method, key, value, source", OPTIMISER_VALUES)
def test_optimiser_values(method, key, value, source):
    recipe = METHODS.get(method).recipe
    assert getattr(recipe, key) == value, f"{method}.{key} should be {value} ({source})"
    assert recipe.source.endswith(f"{CIFAR}/{method}.yaml")


@pytest.mark.parametrize("method", METHODS.names())
def test_optimiser_settings_and_schedule_values(method):
    resolved = optim_of(RunConfig(method=method, epochs=200))
    if resolved["optimizer"] == "lars":
        assert resolved["optimizer_args"] == {**dataclasses.asdict(LARSParams()), **LARS_VALUES, "momentum": MOMENTUM}
    else:  # solo-learn's SGD recipes set no optimizer.kwargs: momentum 0.9 (solo/args/pretrain.py), and no
        # optimizer.exclude_bias_n_norm_wd: False (solo/methods/base.py), so every tensor decays
        assert resolved["optimizer"] == "sgd"
        assert resolved["optimizer_args"] == {"momentum": MOMENTUM, "exclude_bias_n_norm_wd": False}
    assert {k: resolved[k] for k in SCHEDULE_VALUES} == SCHEDULE_VALUES


# (method, classifier_lr of the CIFAR file, lr and weight decay of solo-learn's imagenet-100 file): the
# online classifier's lr (optimizer.classifier_lr) and the large-image optimiser values
IN100 = "scripts/pretrain/imagenet-100"
SCALE_VALUES = [
    ("barlow", 0.1, 0.3, 1e-4),
    ("byol", 0.1, 0.5, 1e-6),
    ("dino", 0.1, 0.3, 1e-6),
    ("mocov3", 0.3, 0.3, 1e-6),
    ("nnclr", 0.1, 0.4, 1e-5),
    ("simclr", 0.1, 0.3, 1e-4),
    ("simsiam", 0.1, 0.5, 1e-5),
    ("vicreg", 0.1, 0.3, 1e-4),
]


@pytest.mark.parametrize("method, classifier_lr, large_lr, large_wd", SCALE_VALUES)
def test_classifier_and_large_image_optimiser_values(method, classifier_lr, large_lr, large_wd):
    recipe = METHODS.get(method).recipe
    assert recipe.classifier_lr == classifier_lr, f"{CIFAR}/{method}.yaml: optimizer.classifier_lr"
    large = recipe.values(method, "imagefolder", LARGE_IMAGE_SIZE)
    assert (large.lr, large.weight_decay, large.classifier_lr) == (large_lr, large_wd, classifier_lr)
    assert large.source == f"solo-learn {IN100}/{method}.yaml"
    assert recipe.values(method, "cifar10", 32).lr == recipe.lr and recipe.values(method, "stl10", None).lr == recipe.lr
    # FGVC-Aircraft at 224 px: gps-ssl's own file, which holds the CIFAR values
    aircraft = recipe.values(method, "fgvc_aircraft", 224)
    assert (aircraft.lr, aircraft.weight_decay) == (recipe.lr, recipe.weight_decay)
    assert aircraft.source == f"gps-ssl scripts/pretrain/aircrafts/{method}.yaml"


def test_large_images_train_with_the_large_image_file_and_change_only_those_ids():
    """224 px BYOL and SimCLR take solo-learn's imagenet-100 lr and weight decay; the recipes whose
    imagenet-100 values equal the CIFAR ones, and FGVC-Aircraft (gps-ssl's file), keep their ids."""
    byol = optim_of(RunConfig(method="byol", dataset="imagefolder", image_size=224))
    assert (byol["lr"], byol["weight_decay"]) == (0.5, 1e-6)
    assert optim_of(RunConfig(method="simclr", dataset="stl10"))["lr"] == pytest.approx(0.3)  # native 96 px
    assert optim_of(RunConfig(method="simclr", dataset="cifar10"))["lr"] == pytest.approx(0.4)
    aircraft = optim_of(RunConfig(method="byol", dataset="fgvc_aircraft"))
    assert (aircraft["lr"], aircraft["weight_decay"]) == (1.0, 1e-5)


@pytest.mark.parametrize("method, key, value, source", HEAD_AND_LOSS_VALUES)
def test_head_and_loss_values(method, key, value, source):
    assert getattr(METHODS.get(method).Params(), key) == value, f"{method}.{key} should be {value} ({source})"


@pytest.mark.parametrize("method, size, view1, view2, source", STRONG_VALUES)
def test_strong_augmentation_values(method, size, view1, view2, source):
    pair = resolve_aug_params("strong", {}, size, METHODS.get(method).recipe.strong)
    for view, expected in ((pair.view1, view1), (pair.view2, view2)):
        got = {key: getattr(view, key) for key in expected}
        assert got == expected, f"{method} strong at {size} px should follow {source}"
        assert view.interpolation == "bicubic"  # solo-learn's RandomResizedCrop: InterpolationMode.BICUBIC
    assert METHODS.get(method).recipe.strong.at(size).source.endswith(source)
    assert LARGE_IMAGE_SIZE == 96


def test_the_docs_recipe_table_is_the_generated_one():
    page = (REPO / "docs/training.md").read_text()
    found = re.search(r"<!-- recipes:begin -->\n(.*?)<!-- recipes:end -->", page, re.S)
    assert found, "docs/training.md lacks the recipe table markers"
    assert found.group(1) == recipe_table(), "the recipe table is stale: paste `gpsbench recipes` into docs/training.md"
    views = re.search(r"<!-- views:begin -->\n(.*?)<!-- views:end -->", page, re.S)
    assert views, "docs/training.md lacks the views table markers"
    assert views.group(1) == views_table(), "the views table is stale: paste `gpsbench recipes` into docs/training.md"


@pytest.mark.parametrize("sweep", ["cifar10", "digits", "cifar100", "protocol-digits"])
def test_a_gps_cell_and_its_plain_twin_train_with_the_same_recipe(sweep):
    """The fairness rule: in the shipped sweeps, the cells that differ only in their prior (plain SSL
    and its GPS twins) take the same recipe, and their anchors the same pipeline; a GPS positive goes
    through the pipeline its neighbour_view names (the first: the official code's)."""
    from benchmark.sweep.plan import expand
    from benchmark.sweep.spec import load_sweep

    spec = load_sweep(REPO / "sweeps" / f"{sweep}.yaml")
    plan = expand(spec)
    twins: dict[tuple, set[str]] = {}
    for cell in plan.cells:
        key = tuple((axis, value) for axis, value in cell.axes.items() if axis != "prior")
        c = cell.config
        recipe = resolve_aug_params(c.aug, c.aug_args, 32, strong_of(c.method))
        twins.setdefault(key, set()).add(repr((recipe, run_views(recipe, c.is_gps, c.neighbour_view).view1)))
        used = run_views(recipe, c.is_gps, c.neighbour_view)
        assert used.view2 == (recipe.view1 if c.is_gps and c.neighbour_view == "first" else recipe.view2)
    assert all(len(pipelines) == 1 for pipelines in twins.values())
    if not spec.exclude:  # every cell has all its prior twins
        assert len(plan.cells) == len(twins) * len(spec.grid["prior"])


@pytest.mark.parametrize("method", METHODS.names())
def test_the_neighbours_view_takes_the_pipeline_the_official_code_gives_it(method, tmp_path):
    """What a GPS run builds: anchor and neighbour through the recipe's first pipeline (gps-ssl's
    GPS_Dataset_Wrapper takes the first crop of each); `neighbour_view: second` and a plain run keep
    the recipe's pair. At 8 px (digits) the small-image recipe, at 96 px the large-image one."""
    from benchmark.assembly import build_parts
    from benchmark.data import load_dataset

    data = load_dataset("digits", data_dir=tmp_path)
    base = {"dataset": "digits", "backbone": "small", "method": method, "batch_size": 64, "data_dir": str(tmp_path)}
    base["method_args"] = small_method_args(method, 32, proj_output_dim=16, queue_size=128)
    recipe = resolve_aug_params("strong", {}, data.image_size, strong_of(method))
    built = {
        name: build_parts(RunConfig.from_dict({**base, **values}), data, torch.device("cpu"), results_dir=tmp_path)
        for name, values in (
            ("gps", {"prior": "pixel", "k": 5}),
            ("gps-second", {"prior": "pixel", "k": 5, "neighbour_view": "second"}),
            ("plain", {}),
        )
    }
    assert built["gps"].augment.views == ViewPair.both(recipe.view1)
    assert built["gps-second"].augment.views == recipe
    assert built["plain"].augment.views == recipe
    if method in ("byol", "nnclr", "barlow", "mocov3", "dino"):  # asymmetric: no solarised neighbour
        assert built["gps"].augment.views.view2.solarize_p == 0.0 and recipe.view2.solarize_p == 0.2
    large = resolve_aug_params("strong", {}, LARGE_IMAGE_SIZE, strong_of(method))
    assert run_views(large, True, "first") == ViewPair.both(large.view1)
