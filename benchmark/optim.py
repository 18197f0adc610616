"""Optimisers (LARS, SGD, AdamW) and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from benchmark.registry import Registry


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratio eta * ||w|| / (||g|| + wd * ||w||) (You et al. 2017).

    Groups with `lars=False` (biases, norm layers) take plain momentum SGD, as in SimCLR/BYOL.
    Uses foreach kernels and no host syncs, so a step costs a few launches, not one per tensor.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            wd, eta = group["weight_decay"], group["eta"]
            if group["lars"]:  # all trust ratios at once: a handful of launches, not several per tensor
                w = torch.stack(torch._foreach_norm(params))
                g = torch.stack(torch._foreach_norm(grads))
                trust = torch.where((w > 0) & (g > 0), eta * w / (g + wd * w), 1.0).unbind()
            if wd:
                grads = torch._foreach_add(grads, params, alpha=wd)
            if group["lars"]:
                grads = torch._foreach_mul(grads, trust)
            buffers = []
            for p, g in zip(params, grads):
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffers.append(state["momentum_buffer"])
            torch._foreach_mul_(buffers, group["momentum"])
            torch._foreach_add_(buffers, grads)
            torch._foreach_add_(params, buffers, alpha=-group["lr"])


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weights get decay (and LARS adaptation); biases and norm parameters get neither."""
    decay, plain = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else plain).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars": True},
        {"params": plain, "weight_decay": 0.0, "lars": False},
    ]


OptimizerBuilder = Callable[[list[dict], float], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")
OPTIMIZERS.register("lars")(lambda groups, lr: LARS(groups, lr=lr))
OPTIMIZERS.register("sgd")(lambda groups, lr: torch.optim.SGD(groups, lr=lr, momentum=0.9))
OPTIMIZERS.register("adamw")(lambda groups, lr: torch.optim.AdamW(groups, lr=lr, fused=True))


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name != "lars":
        for group in groups:
            group.pop("lars")
    return OPTIMIZERS.get(name)(groups, lr)


def resolve_optim(config) -> dict:
    """Optimiser, lr (base lr x batch / 256), weight decay and warm-up from the method's recipe
    wherever the config leaves them unset."""
    from benchmark.methods import METHODS

    recipe = METHODS.get(config.method).recipe
    return {
        "optimizer": config.optimizer or recipe.optimizer,
        "lr": config.lr if config.lr is not None else recipe.lr * config.batch_size / 256,
        "weight_decay": config.weight_decay if config.weight_decay is not None else recipe.weight_decay,
        "warmup_epochs": config.warmup_epochs if config.warmup_epochs is not None else min(10, config.epochs // 10),
    }


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up from base/warmup to base, then cosine decay to 0 at total_steps."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
