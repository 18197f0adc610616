"""Augmentation: what each view does (`settings`: AugmentParams, the reference pipelines, the presets)
and the batched on-device kernel that does it (`kernel`: BatchAugment). The names below are the
package's interface."""

from benchmark.augment.kernel import LUMA, BatchAugment, normalize, sample_crop_boxes, to_unit_float
from benchmark.augment.settings import (
    AUGMENTATIONS,
    INTERPOLATIONS,
    LARGE_IMAGE_SIZE,
    NEIGHBOUR_VIEWS,
    SHARED_KEYS,
    SOLO_CIFAR_ASYMMETRIC,
    SOLO_IMAGENET_ASYMMETRIC,
    VIEWS,
    AugmentParams,
    ReferencePipeline,
    StrongRecipe,
    ViewPair,
    resolve_aug_params,
    run_views,
)

__all__ = [
    "AUGMENTATIONS",
    "INTERPOLATIONS",
    "LARGE_IMAGE_SIZE",
    "LUMA",
    "NEIGHBOUR_VIEWS",
    "SHARED_KEYS",
    "SOLO_CIFAR_ASYMMETRIC",
    "SOLO_IMAGENET_ASYMMETRIC",
    "VIEWS",
    "AugmentParams",
    "BatchAugment",
    "ReferencePipeline",
    "StrongRecipe",
    "ViewPair",
    "normalize",
    "resolve_aug_params",
    "run_views",
    "sample_crop_boxes",
    "to_unit_float",
]
