"""The per-channel mean and std a dataset's images are normalised with.

The references normalise the data sets they know with fixed published constants, not with statistics
of the copy at hand: solo-learn's pretraining pipeline (solo/data/pretrain_dataloader.py,
build_transform_pipeline, MEANS_N_STD) for CIFAR-10, CIFAR-100 and STL-10, and the official GPS
code's copy of it (aarashfeizi/gps-ssl, same file) for FGVC-Aircraft (`aircrafts`: timm's ImageNet
constants). Every other data set (digits, MedMNIST, a custom image folder) is normalised with the
mean and std estimated from its own training images (`channel_stats`).
"""

from __future__ import annotations

from dataclasses import dataclass

SOLO_PRETRAIN = "solo-learn solo/data/pretrain_dataloader.py (build_transform_pipeline, MEANS_N_STD)"
GPS_PRETRAIN = "gps-ssl solo/data/pretrain_dataloader.py (build_transform_pipeline, MEANS_N_STD: aircrafts)"
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm.data.constants IMAGENET_DEFAULT_MEAN
IMAGENET_STD = (0.229, 0.224, 0.225)  # timm.data.constants IMAGENET_DEFAULT_STD


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str


REFERENCE_NORMALIZATION = {
    "cifar10": Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), SOLO_PRETRAIN),
    "cifar100": Normalization((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), SOLO_PRETRAIN),
    "stl10": Normalization((0.4914, 0.4823, 0.4466), (0.247, 0.243, 0.261), SOLO_PRETRAIN),
    "fgvc_aircraft": Normalization(IMAGENET_MEAN, IMAGENET_STD, GPS_PRETRAIN),
}


def reference_normalization(dataset: str) -> Normalization | None:
    """The references' fixed constants for a data set they know; None: estimate them from the data."""
    return REFERENCE_NORMALIZATION.get(dataset)
