"""What an augmentation does: one view's settings (AugmentParams), the pair of views, the reference
pipelines of solo-learn's augmentation files, and the presets (`none`, `weak`, `crop`, `strong`).

Presets: `none`, `weak` (the paper's: horizontal flip only), `crop` (crop + flip) mean the same for
every method; `strong` is the method's reference recipe (solo-learn's augmentation file for that
method: see each method's `recipe`), which the caller hands in, so augmentation never looks a method up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from benchmark.errors import ConfigError, choice_error
from benchmark.registry import Registry

LARGE_IMAGE_SIZE = 96  # `strong` takes a recipe's large-image (ImageNet) pipeline from this side up
INTERPOLATIONS = ("bilinear", "bicubic")
VIEWS = ("view1", "view2")
SHARED_KEYS = ("crop_ratio", "size", "interpolation")  # one batch tensor: both views share these


@dataclass(frozen=True)
class AugmentParams:
    """One view's pipeline: crop -> colour jitter -> grayscale -> blur -> solarise (flip anywhere:
    it commutes), solo-learn's order (solo/data/pretrain_dataloader.py, build_transform_pipeline)."""

    flip_p: float = 0.0
    crop: bool = False
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    jitter_p: float = 0.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    size: int | None = None  # output side; None keeps the input size
    interpolation: str = "bicubic"  # of crop and resize: solo-learn's RandomResizedCrop uses BICUBIC

    def validate(self, prefix: str = "aug_args") -> None:
        problems = []
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{prefix}.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                problems.append(f"{prefix}.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            problems.append(f"{prefix}.hue must be in [0, 0.5], got {self.hue}")
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                problems.append(f"{prefix}.{name} must be (low, high) with 0 < low <= high, got {getattr(self, name)}")
        if self.crop_scale[1] > 1:
            problems.append(f"{prefix}.crop_scale must not exceed 1, got {self.crop_scale}")
        if self.size is not None and self.size < 1:
            problems.append(f"{prefix}.size must be positive, got {self.size}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(str(choice_error(f"{prefix}.interpolation", self.interpolation, INTERPOLATIONS)))
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class ViewPair:
    """The pipelines of the two views: view1 augments the anchors, view2 their positives."""

    view1: AugmentParams
    view2: AugmentParams

    @property
    def symmetric(self) -> bool:
        return self.view1 == self.view2

    @classmethod
    def both(cls, params: AugmentParams) -> "ViewPair":
        return cls(params, params)


@dataclass(frozen=True)
class ReferencePipeline:
    """A reference augmentation file: each view's AugmentParams values, and the file they come from."""

    view1: Mapping[str, Any]
    view2: Mapping[str, Any]
    source: str


# solo-learn's shared augmentation files (scripts/pretrain/<cifar|imagenet-100>/augmentations/*.yaml at
# vturrisi/solo-learn 9187ea3, the same values as aarashfeizi/gps-ssl's copies); each method's recipe
# names the one it uses. Values not listed are AugmentParams' defaults (flip 0.5 is listed).
_CIFAR_ASYMMETRIC_VIEW = {  # scripts/pretrain/cifar/augmentations/asymmetric.yaml (both entries)
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
SOLO_CIFAR_ASYMMETRIC = ReferencePipeline(
    view1={**_CIFAR_ASYMMETRIC_VIEW, "solarize_p": 0.0},  # first entry: solarization prob 0.0
    view2={**_CIFAR_ASYMMETRIC_VIEW, "solarize_p": 0.2},  # second entry: solarization prob 0.2
    source="solo-learn scripts/pretrain/cifar/augmentations/asymmetric.yaml",
)
SOLO_IMAGENET_ASYMMETRIC = ReferencePipeline(  # scripts/pretrain/imagenet-100/augmentations/asymmetric.yaml
    view1={**_CIFAR_ASYMMETRIC_VIEW, "blur_p": 1.0, "solarize_p": 0.0},  # first entry: blur 1.0
    view2={**_CIFAR_ASYMMETRIC_VIEW, "blur_p": 0.1, "solarize_p": 0.2},  # second: blur 0.1, solarization 0.2
    source="solo-learn scripts/pretrain/imagenet-100/augmentations/asymmetric.yaml",
)


@dataclass(frozen=True)
class StrongRecipe:
    """A method's `strong` augmentation: its small-image (CIFAR) and large-image (ImageNet) files."""

    small: ReferencePipeline
    large: ReferencePipeline

    def at(self, image_size: int) -> ReferencePipeline:
        return self.large if image_size >= LARGE_IMAGE_SIZE else self.small


# -------------------------------------------------------------------------------- presets
# (image size, the method's strong recipe) -> both views' AugmentParams values
PresetFn = Callable[[int, StrongRecipe | None], tuple[Mapping[str, Any], Mapping[str, Any]]]
AUGMENTATIONS: Registry[PresetFn] = Registry("augmentation")


def _same(values: Mapping[str, Any]) -> PresetFn:
    return lambda size, strong: (values, values)


def _method_recipe(size: int, strong: StrongRecipe | None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if strong is None:
        raise ValueError("the strong preset is the method's own recipe: pass the method's StrongRecipe")
    pipeline = strong.at(size)
    return pipeline.view1, pipeline.view2


AUGMENTATIONS.register("none")(_same({}))
AUGMENTATIONS.register("weak")(_same({"flip_p": 0.5}))  # the paper's weak DA: horizontal flip only
AUGMENTATIONS.register("crop")(_same({"flip_p": 0.5, "crop": True}))
AUGMENTATIONS.register("strong")(_method_recipe)


def _coerce_aug_value(key: str, value: Any, prefix: str) -> Any:
    default = getattr(AugmentParams(), key)
    if isinstance(default, tuple):
        if not (isinstance(value, (list, tuple)) and len(value) == 2) or any(isinstance(v, bool) for v in value):
            raise ConfigError(f"{prefix}.{key} must be a pair [low, high], got {value!r}")
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{prefix}.{key} must be a pair of numbers, got {value!r}") from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{prefix}.{key} must be true or false, got {value!r}")
        return value
    if key == "size":
        if not (value is None or (isinstance(value, int) and not isinstance(value, bool))):
            raise ConfigError(f"{prefix}.size must be an integer or null, got {value!r}")
        return value
    if key == "interpolation":
        if not isinstance(value, str):
            raise ConfigError(f"{prefix}.interpolation must be one of {', '.join(INTERPOLATIONS)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{prefix}.{key} must be a number, got {value!r}")
    return float(value)


def _apply(values: dict[str, Any], overrides: Mapping[str, Any], prefix: str) -> None:
    known = {f.name for f in dataclasses.fields(AugmentParams)}
    for key, value in overrides.items():
        if key not in known:
            raise choice_error(f"{prefix} key", key, sorted(known) + (list(VIEWS) if prefix == "aug_args" else []))
        values[key] = _coerce_aug_value(key, value, prefix)


def resolve_aug_params(
    preset: str, overrides: Mapping[str, Any], image_size: int, strong: StrongRecipe | None = None
) -> ViewPair:
    """Both views' pipelines: the preset for this image size (`strong`: the method's own recipe, which
    the caller hands in: `METHODS.get(name).recipe.strong`), then the user's overrides, type-checked.
    A plain key (`solarize_p: 0.1`) sets both views; `view1: {...}` / `view2: {...}` set one.
    crop_ratio, size and interpolation must be the same in both views."""
    first, second = (dict(v) for v in AUGMENTATIONS.get(preset)(image_size, strong))
    shared = {k: v for k, v in overrides.items() if k not in VIEWS}
    for values in (first, second):
        _apply(values, shared, "aug_args")
    for name, values in zip(VIEWS, (first, second)):
        own = overrides.get(name, {})
        if not isinstance(own, Mapping):
            raise ConfigError(f"aug_args.{name} must be a mapping of aug_args keys, got {own!r}")
        _apply(values, own, f"aug_args.{name}")
    pair = ViewPair(AugmentParams(**first), AugmentParams(**second))
    pair.view1.validate("aug_args" if pair.symmetric else "aug_args.view1")
    if not pair.symmetric:
        pair.view2.validate("aug_args.view2")
    differ = [k for k in SHARED_KEYS if getattr(pair.view1, k) != getattr(pair.view2, k)]
    if differ:
        raise ConfigError(
            f"aug_args: the two views must share {', '.join(differ)} (one batch tensor); got "
            + ", ".join(f"{k} {getattr(pair.view1, k)!r} vs {getattr(pair.view2, k)!r}" for k in differ)
        )
    return pair


# How a GPS cell augments its neighbour x' (`neighbour_view`). The official GPS code's dataset wrapper
# (aarashfeizi/gps-ssl, solo/data/gps_dataset.py, GPS_Dataset_Wrapper.__getitem__) takes the first
# crop of the anchor's and of each neighbour's transform output (`x1 = x1[0]`, `x2 = x2[0]`), and
# main_nn.py builds that transform from every entry of `augmentations` in order, so both views of a
# GPS pair go through the recipe's first pipeline: with an asymmetric recipe (BYOL, NNCLR, Barlow
# Twins, MoCo v3, DINO; SimSiam from 96 px) the second pipeline (solarisation, the weaker blur) is
# never applied. `second` keeps the plain twin's layout: the neighbour through the second pipeline.
NEIGHBOUR_VIEWS = ("first", "second")


def run_views(pair: ViewPair, gps: bool, neighbour_view: str) -> ViewPair:
    """The pipelines a run trains with: a plain run's pair as its recipe gives it; a GPS run's
    positives through the first pipeline (`first`, the official code) or the second (`second`)."""
    if neighbour_view not in NEIGHBOUR_VIEWS:
        raise choice_error("neighbour_view", neighbour_view, NEIGHBOUR_VIEWS)
    if gps and neighbour_view == "first":
        return ViewPair.both(pair.view1)
    return pair
