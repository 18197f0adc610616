"""Optimisers (LARS, SGD, AdamW) with typed settings, and the warm-up + cosine learning-rate schedule.

What a method's recipe leaves unset comes from the defaults here, which are those of the reference
implementation, solo-learn (the base of the official GPS code): its LARS class
(`solo/utils/lars.py`), its optimiser defaults (`solo/args/pretrain.py`) and its scheduler defaults
(`solo/methods/base.py`). The CIFAR recipes then switch on what solo-learn's CIFAR files switch on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import torch
import torch.nn as nn

from benchmark.errors import ConfigError
from benchmark.params import resolve_params
from benchmark.registry import Registry

WARMUP_EPOCHS = 10  # solo-learn solo/methods/base.py: scheduler.warmup_epochs default
WARMUP_START_LR = 3e-5  # solo-learn solo/methods/base.py: scheduler.warmup_start_lr default


@dataclass(frozen=True)
class LARSParams:
    momentum: float = 0.9  # solo-learn solo/args/pretrain.py: lars momentum default
    eta: float = 1e-3  # solo-learn solo/args/pretrain.py: lars eta default (the CIFAR recipes set 0.02)
    clip_lr: bool = False  # solo-learn solo/args/pretrain.py (the CIFAR recipes set True)
    exclude_bias_n_norm: bool = False  # solo-learn solo/args/pretrain.py (the CIFAR recipes set True)
    eps: float = 1e-8  # solo-learn solo/utils/lars.py


# solo-learn solo/methods/base.py (add_and_assert_specific_cfg): optimizer.exclude_bias_n_norm_wd defaults
# to False, so SGD and AdamW decay every tensor, biases and norm parameters included (no recipe sets it)
SOLO_EXCLUDE_BIAS_N_NORM_WD = False


@dataclass(frozen=True)
class SGDParams:
    momentum: float = 0.9  # solo-learn solo/args/pretrain.py: sgd momentum default
    exclude_bias_n_norm_wd: bool = SOLO_EXCLUDE_BIAS_N_NORM_WD  # true: no decay on tensors of one dimension


@dataclass(frozen=True)
class AdamWParams:
    beta1: float = 0.9  # solo-learn solo/args/pretrain.py: adamw betas default [0.9, 0.999]
    beta2: float = 0.999
    exclude_bias_n_norm_wd: bool = SOLO_EXCLUDE_BIAS_N_NORM_WD  # true: no decay on tensors of one dimension

    def validate(self) -> None:
        if not (self.beta1 < 1 and self.beta2 < 1):
            raise ConfigError(f"optimizer_args beta1 and beta2 must be < 1, got {self.beta1}, {self.beta2}")


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017), as solo-learn computes it.

    In a group with `lars=True`, a tensor w with gradient g and weight decay wd takes the step
    d = r * (g + wd * w) with r = eta * ||w|| / (||g|| + wd * ||w|| + eps); with `clip_lr`,
    r = min(r / lr, 1), so that lr * r = min(eta * ||w|| / (...), lr). Where ||w|| or ||g|| is 0,
    d = g (no decay, as solo-learn). Groups with `lars=False` (biases and norm parameters when they
    are excluded) take plain momentum SGD with their own weight decay (0 in the recipes).
    Then v <- momentum * v + d and w <- w - lr * v. Foreach kernels, no host syncs.
    """

    def __init__(
        self, params, lr: float, momentum: float = 0.9, eta: float = 1e-3, clip_lr: bool = False, eps: float = 1e-8
    ):
        super().__init__(
            params, dict(lr=lr, momentum=momentum, weight_decay=0.0, eta=eta, clip_lr=clip_lr, eps=eps, lars=True)
        )

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            wd = group["weight_decay"]
            if group["lars"]:  # all trust ratios at once: a handful of launches, not several per tensor
                w = torch.stack(torch._foreach_norm(params))
                g = torch.stack(torch._foreach_norm(grads))
                ratio = group["eta"] * w / (g + wd * w + group["eps"])
                if group["clip_lr"]:
                    ratio = torch.clamp(ratio / group["lr"], max=1.0)  # lr 0: inf, clipped to 1
                adapted = (w > 0) & (g > 0)
                steps = torch._foreach_mul(grads, torch.where(adapted, ratio, 1.0).unbind())
                if wd:
                    torch._foreach_add_(
                        steps, torch._foreach_mul(params, torch.where(adapted, wd * ratio, 0.0).unbind())
                    )
            else:
                steps = torch._foreach_add(grads, params, alpha=wd) if wd else grads
            buffers = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffers.append(state["momentum_buffer"])
            torch._foreach_mul_(buffers, group["momentum"])
            torch._foreach_add_(buffers, steps)
            torch._foreach_add_(params, buffers, alpha=-group["lr"])


def param_groups(model: nn.Module, weight_decay: float, exclude_bias_n_norm: bool = True) -> list[dict]:
    """Weights get decay (and LARS adaptation); with `exclude_bias_n_norm`, biases and norm
    parameters (every tensor of one dimension) get neither, else they are treated as weights. The
    parameters of a method's `static_lr_modules()` form groups of their own marked `static_lr`."""
    static_modules: list[nn.Module] = getattr(model, "static_lr_modules", lambda: [])()
    static = {id(param) for module in static_modules for param in module.parameters()}
    groups: dict[tuple[bool, bool], list] = {}
    for param in model.parameters():
        if param.requires_grad:
            decays = param.ndim > 1 or not exclude_bias_n_norm
            groups.setdefault((decays, id(param) in static), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lars": decays, "static_lr": is_static}
        for (decays, is_static), params in sorted(groups.items(), key=lambda item: (not item[0][0], item[0][1]))
    ]


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimiser: its typed settings (`optimizer_args`) and how it is built from parameter groups."""

    Params: type
    build: Callable[[list[dict], float, Any], torch.optim.Optimizer]
    adapts_layers: bool = False  # LARS: groups carry the `lars` flag


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")
OPTIMIZERS.register("lars")(
    OptimizerSpec(
        LARSParams,
        lambda groups, lr, p: LARS(groups, lr=lr, momentum=p.momentum, eta=p.eta, clip_lr=p.clip_lr, eps=p.eps),
        adapts_layers=True,
    )
)
OPTIMIZERS.register("sgd")(
    OptimizerSpec(SGDParams, lambda groups, lr, p: torch.optim.SGD(groups, lr=lr, momentum=p.momentum))
)
OPTIMIZERS.register("adamw")(
    OptimizerSpec(  # torch's fused kernel: no host reads of its step counts
        AdamWParams, lambda groups, lr, p: torch.optim.AdamW(groups, lr=lr, betas=(p.beta1, p.beta2), fused=True)
    )
)


def resolve_optimizer_args(name: str, overrides: Mapping[str, Any]):
    """The optimiser's typed settings: its defaults, then `overrides`, type-checked."""
    return resolve_params(OPTIMIZERS.get(name).Params, overrides, "optimizer_args", name)


def build_optimizer(
    name: str, model: nn.Module, lr: float, weight_decay: float, args: Mapping[str, Any] | None = None
) -> torch.optim.Optimizer:
    spec = OPTIMIZERS.get(name)
    params = resolve_optimizer_args(name, args or {})
    return spec.build(_groups(spec, params, model, weight_decay), lr, params)


def _groups(spec: OptimizerSpec, params, model: nn.Module, weight_decay: float) -> list[dict]:
    """LARS's `exclude_bias_n_norm` spares tensors of one dimension both the trust ratio and the decay
    (solo-learn's LARS); SGD's and AdamW's `exclude_bias_n_norm_wd` spares them the decay."""
    exclude = getattr(params, "exclude_bias_n_norm", None)
    groups = param_groups(model, weight_decay, exclude if exclude is not None else params.exclude_bias_n_norm_wd)
    if not spec.adapts_layers:
        for group in groups:
            group.pop("lars")
    return groups


def add_scheduled_group(
    optimizer: torch.optim.Optimizer, name: str, args: Mapping[str, Any], module: nn.Module, lr: float
) -> None:
    """The parameters of `module` as groups of their own in an existing optimiser, without weight decay
    and under their own schedule `name` (set_lr), as solo-learn trains its online classifier
    (solo/methods/base.py, learnable_params: lr classifier_lr, weight_decay 0, in the same optimiser)."""
    spec = OPTIMIZERS.get(name)
    for group in _groups(spec, resolve_optimizer_args(name, args), module, 0.0):
        optimizer.add_param_group({**group, "lr": lr, "schedule": "classifier"})


class OptimRecipe(Protocol):
    """What optimiser set-up reads of a method's recipe (methods.Recipe has these fields)."""

    @property
    def optimizer(self) -> str: ...
    @property
    def lr(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def optimizer_args(self) -> Mapping[str, Any]: ...
    @property
    def warmup_epochs(self) -> int: ...
    @property
    def warmup_start_lr(self) -> float: ...


class OptimChoices(Protocol):
    """What a run's config says of its optimiser (RunConfig has these fields); None: the recipe's."""

    @property
    def optimizer(self) -> str | None: ...
    @property
    def optimizer_args(self) -> Mapping[str, Any]: ...
    @property
    def lr(self) -> float | None: ...
    @property
    def weight_decay(self) -> float | None: ...
    @property
    def warmup_epochs(self) -> int | None: ...
    @property
    def warmup_start_lr(self) -> float | None: ...
    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...


def resolve_optim(config: OptimChoices, recipe: OptimRecipe) -> dict:
    """Optimiser, lr (base lr x batch / 256, as solo-learn scales it), weight decay, optimiser settings
    and warm-up from the method's recipe wherever the config leaves them unset; the caller hands the
    recipe in (RunConfig.recipe: the method's, with its file's lr and weight decay for the run's data
    set and image size). The recipe's optimiser settings apply only to the recipe's optimiser. The
    warm-up is the recipe's 10 epochs in every run of 100 epochs or more (all reference runs); shorter
    runs warm up for a tenth of their epochs, so that a 30-epoch CPU run is not a third warm-up."""
    name = config.optimizer or recipe.optimizer
    defaults = dict(recipe.optimizer_args) if name == recipe.optimizer else {}
    args = resolve_optimizer_args(name, {**defaults, **config.optimizer_args})
    warmup = (
        config.warmup_epochs if config.warmup_epochs is not None else min(recipe.warmup_epochs, config.epochs // 10)
    )
    return {
        "optimizer": name,
        "lr": config.lr if config.lr is not None else recipe.lr * config.batch_size / 256,
        "weight_decay": config.weight_decay if config.weight_decay is not None else recipe.weight_decay,
        "optimizer_args": dataclasses.asdict(args),
        "warmup_epochs": warmup,
        "warmup_start_lr": config.warmup_start_lr if config.warmup_start_lr is not None else recipe.warmup_start_lr,
    }


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, start_lr: float = 0.0) -> float:
    """solo-learn's LinearWarmupCosineAnnealingLR stepped per step (solo/utils/lr_scheduler.py):
    linear from `start_lr` at step 0 to `base_lr` at step warmup_steps - 1, then cosine from base_lr
    at warmup_steps to 0 at total_steps."""
    if warmup_steps and step < warmup_steps:
        if warmup_steps == 1:
            return start_lr
        return start_lr + step * (base_lr - start_lr) / (warmup_steps - 1)
    span = max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def set_lr(
    optimizer: torch.optim.Optimizer, lr: float, base_lr: float, schedules: Mapping[str, float] | None = None
) -> None:
    """The scheduled lr on every group; `static_lr` groups keep the base lr (solo-learn's static_lr); a
    group with a `schedule` of its own (the online classifier's) takes its lr from `schedules`, and
    keeps the one it has when `schedules` does not name it."""
    for group in optimizer.param_groups:
        own = group.get("schedule")
        if own is not None:
            if schedules and own in schedules:
                group["lr"] = schedules[own]
        else:
            group["lr"] = base_lr if group.get("static_lr") else lr
