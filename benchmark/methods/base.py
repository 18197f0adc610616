"""What every method shares: its registry, its reference recipe, its common settings, small helpers.

Each method's file holds its recipe: the optimiser, learning rate, weight decay, warm-up and strong
augmentation of solo-learn's CIFAR recipe for it (the base of the official GPS code), every value
with the file it comes from. Heads and loss settings are the defaults of the method's Params.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn as nn

from benchmark.augment import LARGE_IMAGE_SIZE, StrongRecipe
from benchmark.optim import WARMUP_EPOCHS, WARMUP_START_LR
from benchmark.registry import Registry

METHODS: Registry[type[SSLMethod]] = Registry("method")

# optimizer.kwargs of every solo-learn CIFAR recipe (scripts/pretrain/cifar/<method>.yaml)
SOLO_CIFAR_LARS = {"eta": 0.02, "clip_lr": True, "exclude_bias_n_norm": True}
# solo-learn's momentum block (solo/methods/base.py, BaseMomentumMethod) -> the momentum methods' settings
SOLO_MOMENTUM_NAMES = {"momentum.base_tau": "tau_base", "momentum.final_tau": "tau_final"}


@dataclass(frozen=True)
class OptimValues:
    """The values of one recipe file's optimizer block that differ between files of one method: base
    lr (batch 256), weight decay, the online classifier's base lr, and the file they come from."""

    lr: float
    weight_decay: float
    classifier_lr: float
    source: str


# Data sets whose official GPS code ships its own recipe files: the file of each method (gps-ssl
# scripts/pretrain/aircrafts/<method>.yaml carries the CIFAR files' optimizer values for every method)
GPS_DATASET_FILES = {"fgvc_aircraft": "gps-ssl scripts/pretrain/aircrafts/{method}.yaml"}


@dataclass(frozen=True)
class Recipe:
    """The reference training recipe of a method: lr is the base lr for a batch of 256 (scaled
    linearly, as solo-learn does), `strong` the method's own strong augmentation, `source` the file
    of the optimiser values, `heads_source` the file its heads and loss follow. `classifier_lr` is the
    online linear classifier's base lr (optimizer.classifier_lr), and `large` the optimizer values of
    the method's large-image file (solo-learn scripts/pretrain/imagenet-100/<method>.yaml), used from
    LARGE_IMAGE_SIZE px as the strong augmentation's large pipeline is."""

    optimizer: str
    lr: float
    weight_decay: float
    strong: StrongRecipe
    source: str
    heads_source: str
    classifier_lr: float
    large: OptimValues
    optimizer_args: Mapping[str, Any] = field(default_factory=dict)
    warmup_epochs: int = WARMUP_EPOCHS
    warmup_start_lr: float = WARMUP_START_LR

    @property
    def small(self) -> OptimValues:
        return OptimValues(self.lr, self.weight_decay, self.classifier_lr, self.source)

    def values(self, method: str, dataset: str, image_size: int | None) -> OptimValues:
        """The optimizer values a run of `dataset` at `image_size` px (None: not known before its data
        loads) trains with: the official GPS code's own file for its data sets, else the large-image
        file from LARGE_IMAGE_SIZE px, else the CIFAR file."""
        if dataset in GPS_DATASET_FILES:  # gps-ssl's files hold the CIFAR values with their own source
            return dataclasses.replace(self.small, source=GPS_DATASET_FILES[dataset].format(method=method))
        if image_size is not None and image_size >= LARGE_IMAGE_SIZE:
            return self.large
        return self.small

    def for_data(self, method: str, dataset: str, image_size: int | None) -> "Recipe":
        """This recipe with the optimizer values (lr, weight decay, classifier lr, their source) of the
        file `values` picks for the data set and image size: what a run's optimiser set-up reads."""
        values = self.values(method, dataset, image_size)
        return dataclasses.replace(
            self,
            lr=values.lr,
            weight_decay=values.weight_decay,
            classifier_lr=values.classifier_lr,
            source=values.source,
        )


@dataclass(frozen=True)
class MethodParams:
    """Settings every method has (each method's Params extends it)."""

    # solo-learn runs the backbone once per view (solo/methods/base.py, training_step over the crops),
    # so BatchNorm normalises each view with its own statistics; false: both views in one pass (joint)
    bn_per_view: bool = True


@dataclass(frozen=True)
class MethodContext:
    """Facts about the run a method may size itself by."""

    num_train: int
    epochs: int


class SSLMethod(nn.Module):
    """A backbone plus heads; forward(view1, view2) -> scalar loss. A method that sets
    `uses_pair_ids` also gets ids=(anchor indices, positive indices) (SimCLR's false-negative mask).
    `display_name` and `table_order` say how tables and plots name and order it, so no list of
    methods lives outside the methods' own files."""

    uses_pair_ids = False
    # how solo-learn names this method (None: as here) and the settings it names otherwise (its
    # method_kwargs keys, or momentum.* keys): what a solo-learn YAML import translates (solo_import.py)
    solo_name: str | None = None
    solo_names: Mapping[str, str] = {}
    # whether the loss falls within a few epochs of a small run (the generic training test checks it);
    # a self-distillation loss against a slow momentum teacher need not
    loss_falls_in_short_runs = True
    display_name: str
    table_order: int
    params: MethodParams
    Params: type[MethodParams]
    recipe: Recipe
    projector: nn.Module  # every method's head on the backbone (a refreshed GPS table may embed with it)
    feature_log: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # see embed_views

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def embed_pair(
        self, v1: torch.Tensor, v2: torch.Tensor, network: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`network`'s (default: the backbone's) outputs of both views: one pass per view (BatchNorm
        statistics per view, the reference's way) or, with bn_per_view false, one pass over both."""
        if network is None:
            h1, h2 = self.embed_views([v1, v2])
            return h1, h2
        if self.params.bn_per_view:
            return network(v1), network(v2)
        return network(torch.cat([v1, v2])).chunk(2)

    def embed_views(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """The backbone's features of the anchor view and its positive views, one pass per view or one
        joint pass (bn_per_view false). While `feature_log` is a list, the features of each call go into
        it as (anchor's, positives' rows), for the online classifier (benchmark/online.py)."""
        if self.params.bn_per_view:
            features = [self.backbone(v) for v in views]
        else:
            features = list(self.backbone(torch.cat(views)).chunk(len(views)))
        if self.feature_log is not None:
            self.feature_log.append((features[0], torch.cat(features[1:])))
        return features

    def multi_positive_loss(
        self,
        v1: torch.Tensor,
        positives: list[torch.Tensor],
        ids: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """The loss with m positive views per anchor (`positives: m`, benchmark/positives.py): by default
        the mean of the method's own pair loss over the m pairs, (1/m) sum_j L(v1, v_j), each pair's
        forward as in a two-view run (its BatchNorm statistics, its negatives). The anchor view goes
        through the network once per pair, which gives the same value and gradient as one shared pass;
        state a pair leaves for after_step (a queue's batch, a centre) is the last pair's. `ids`: the
        (anchors, positives j) of each pair, for a method that uses pair ids."""
        terms = [
            self(v1, v, ids=ids[j]) if ids is not None and self.uses_pair_ids else self(v1, v)
            for j, v in enumerate(positives)
        ]
        return torch.stack(terms).mean()

    def after_step(self, progress: float, started: float | None = None) -> None:
        """Called after each optimiser step with the share of training done after it (`progress`, in
        [0, 1]) and before it (`started`; None: `progress`); default: nothing."""

    def static_lr_modules(self) -> list[nn.Module]:
        """Modules whose parameters keep the base lr throughout (no warm-up, no decay): solo-learn's
        `static_lr` groups, e.g. SimSiam's predictor. Default: none."""
        return []


def mlp(
    dims: list[int], last_bn: bool = False, last_bn_affine: bool = True, hidden_bn: bool = True, bias: str = "all"
) -> nn.Sequential:
    """Linear(-BN)-ReLU blocks between the given widths; the last layer is linear (optionally + BN).
    `bias`: "all" Linear layers have one (most of solo-learn's heads: a bias before BatchNorm is
    cancelled by it), "none", or "unless-bn" (only a Linear that no BatchNorm follows)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        bn_follows = (hidden_bn and not last) or (last and last_bn)
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias == "all" or (bias == "unless-bn" and not bn_follows)))
        if not last:
            layers += [nn.BatchNorm1d(dims[i + 1])] if hidden_bn else []
            layers.append(nn.ReLU())
        elif last_bn:
            layers.append(nn.BatchNorm1d(dims[i + 1], affine=last_bn_affine))
    return nn.Sequential(*layers)


def off_diagonal_squares(m: torch.Tensor) -> torch.Tensor:
    """Sum of the squared off-diagonal entries of a square matrix: all squares minus the diagonal's,
    not a boolean mask (whose data-sized result makes the host wait for the GPU)."""
    return m.pow(2).sum() - torch.diagonal(m).pow(2).sum()
