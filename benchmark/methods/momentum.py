"""The momentum (EMA) target network that BYOL, MoCo v3 and DINO share, and its tau schedule.

solo-learn's MomentumUpdater (solo/utils/momentum.py): target <- tau * target + (1 - tau) * online
after every step, tau rising from base_tau to final_tau along a cosine. Here tau is a function of
training progress alone, so a resumed run updates exactly as an uninterrupted one. solo-learn updates
after step k with the tau of k - 1 steps done (BaseMomentumMethod.on_train_batch_end updates, then
moves tau to the new global step), so the first update uses base_tau: the training loop passes the
progress at the step's start (`started`) for it.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from benchmark.errors import ConfigError


def ema_momentum(base: float, final: float, progress: float) -> float:
    """tau = final - (final - base) * (cos(pi * progress) + 1) / 2: base at the start, final at the end."""
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2


def check_taus(base: float, final: float) -> None:
    """solo-learn's MomentumUpdater asserts 0 <= base_tau <= final_tau <= 1."""
    if not 0.0 <= base <= final <= 1.0:
        raise ConfigError(f"method_args need 0 <= tau_base <= tau_final <= 1, got {base}, {final}")


class MomentumTarget(nn.Sequential):
    """A frozen copy of the online modules run in sequence, moved towards them by `update(progress)`.

    BatchNorm statistics are copied rather than averaged. The tensor lists are made once, at the first
    update: by then .to(device) has replaced every buffer object. Two foreach kernels per update."""

    def __init__(self, online: list[nn.Module], tau_base: float, tau_final: float):
        super().__init__(*(copy.deepcopy(m) for m in online))
        self.requires_grad_(False)
        self.tau_base, self.tau_final = tau_base, tau_final
        self._online = online  # a plain list: the online modules stay registered with their method only
        self._tensors = None

    @torch.no_grad()
    def update(self, progress: float) -> None:
        tau = ema_momentum(self.tau_base, self.tau_final, progress)
        target_params, online_params, target_buffers, online_buffers = self._listed()
        torch._foreach_lerp_(target_params, online_params, 1.0 - tau)
        if target_buffers:
            torch._foreach_copy_(target_buffers, online_buffers)

    def _listed(self):
        if self._tensors is None:
            online = nn.ModuleList(self._online)
            self._tensors = (
                list(self.parameters()),
                list(online.parameters()),
                list(self.buffers()),
                list(online.buffers()),
            )
        return self._tensors
