"""What every method shares: its registry, its reference recipe, its common settings, small helpers.

Each method's file holds its recipe: the optimiser, learning rate, weight decay, warm-up and strong
augmentation of solo-learn's CIFAR recipe for it (the base of the official GPS code), every value
with the file it comes from. Heads and loss settings are the defaults of the method's Params.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn as nn

from benchmark.augment import StrongRecipe
from benchmark.optim import WARMUP_EPOCHS, WARMUP_START_LR
from benchmark.registry import Registry

METHODS: Registry[type[SSLMethod]] = Registry("method")

# optimizer.kwargs of every solo-learn CIFAR recipe (scripts/pretrain/cifar/<method>.yaml)
SOLO_CIFAR_LARS = {"eta": 0.02, "clip_lr": True, "exclude_bias_n_norm": True}
# solo-learn's momentum block (solo/methods/base.py, BaseMomentumMethod) -> the momentum methods' settings
SOLO_MOMENTUM_NAMES = {"momentum.base_tau": "tau_base", "momentum.final_tau": "tau_final"}


@dataclass(frozen=True)
class Recipe:
    """The reference training recipe of a method: lr is the base lr for a batch of 256 (scaled
    linearly, as solo-learn does), `strong` the method's own strong augmentation, `source` the file
    of the optimiser values, `heads_source` the file its heads and loss follow."""

    optimizer: str
    lr: float
    weight_decay: float
    strong: StrongRecipe
    source: str
    heads_source: str
    optimizer_args: Mapping[str, Any] = field(default_factory=dict)
    warmup_epochs: int = WARMUP_EPOCHS
    warmup_start_lr: float = WARMUP_START_LR


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

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def embed_pair(
        self, v1: torch.Tensor, v2: torch.Tensor, network: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`network`'s (default: the backbone's) outputs of both views: one pass per view (BatchNorm
        statistics per view, the reference's way) or, with bn_per_view false, one pass over both."""
        network = network or self.backbone
        if self.params.bn_per_view:
            return network(v1), network(v2)
        return network(torch.cat([v1, v2])).chunk(2)

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

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step with progress in [0, 1]; default: nothing."""

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
