"""DINO (Caron et al. 2021): the student matches the momentum teacher's centred, sharpened distribution
over prototypes on the other view (self-distillation), with the two global views of CIFAR size."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.augment import SOLO_CIFAR_ASYMMETRIC, SOLO_IMAGENET_ASYMMETRIC, StrongRecipe
from benchmark.distributed import gather
from benchmark.errors import ConfigError
from benchmark.methods.base import (
    METHODS,
    SOLO_CIFAR_LARS,
    SOLO_MOMENTUM_NAMES,
    MethodContext,
    MethodParams,
    OptimValues,
    Recipe,
    SSLMethod,
)
from benchmark.methods.momentum import MomentumTarget, check_taus


def dino_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float,
    teacher_temperature: torch.Tensor | float,
) -> torch.Tensor:
    """student, teacher: prototype scores of view 1's rows then view 2's. Each teacher view's
    softmax((t - center) / T_t) is the target of the student's log_softmax(s / T_s) on the other view;
    the cross-entropies are averaged over rows, then over the two pairs of views."""
    log_p1, log_p2 = F.log_softmax(student.float() / student_temperature, dim=1).chunk(2)
    q1, q2 = F.softmax((teacher.detach().float() - center) / teacher_temperature, dim=1).chunk(2)
    return (-(q1 * log_p2).sum(dim=1).mean() - (q2 * log_p1).sum(dim=1).mean()) / 2


class Prototypes(nn.Linear):
    """Cosine scores against learnt prototypes: solo-learn's weight-normalised last layer with its norm
    fixed to 1 (norm_last_layer: True). While `frozen` is 1 the prototypes get a zero gradient (solo-learn
    drops theirs in the first freeze_last_layer epochs; weight decay then only rescales rows that are
    normalised anyway). `frozen` is a tensor so that the step neither syncs nor recompiles."""

    frozen: torch.Tensor  # buffer

    def __init__(self, dim: int, count: int):
        super().__init__(dim, count, bias=False)  # nn.Linear's initialisation, as weight_norm's direction
        self.register_buffer("frozen", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.lerp(self.weight, self.weight.detach(), self.frozen)  # the same value either way
        return F.normalize(x, dim=1) @ F.normalize(weight, dim=1).T


@dataclass(frozen=True)
class DINOParams(MethodParams):
    proj_hidden_dim: int = 2048  # solo-learn scripts/pretrain/cifar/dino.yaml: method_kwargs
    proj_output_dim: int = 256  # same file (the bottleneck before the prototypes)
    num_prototypes: int = 4096  # same file
    tau_base: float = 0.9995  # same file: momentum.base_tau
    tau_final: float = 1.0  # same file: momentum.final_tau
    # the yaml sets none of these: solo-learn solo/methods/dino.py add_and_assert_specific_cfg defaults
    student_temperature: float = 0.1
    teacher_temperature: float = 0.07
    warmup_teacher_temperature: float = 0.04
    warmup_teacher_temperature_epochs: int = 0  # so the teacher is at 0.07 from the first epoch
    freeze_last_layer: int = 1  # epochs in which the prototypes do not learn
    center_momentum: float = 0.9  # solo-learn solo/losses/dino.py: DINOLoss default

    def validate(self) -> None:
        for name in ("student_temperature", "teacher_temperature", "warmup_teacher_temperature"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"method_args.{name} must be > 0, got {getattr(self, name)}")
        if self.center_momentum > 1:
            raise ConfigError(f"method_args.center_momentum must be <= 1, got {self.center_momentum}")
        check_taus(self.tau_base, self.tau_final)


@METHODS.register("dino")
class DINO(SSLMethod):
    display_name, table_order = "DINO", 7
    # the teacher (tau 0.9995) barely moves in a few hundred steps: its centred targets are near uniform
    # and the loss sits near ln(prototypes) at first, as DINO's does early in the references' runs
    loss_falls_in_short_runs = False
    Params = DINOParams
    solo_names = SOLO_MOMENTUM_NAMES
    params: DINOParams
    center: torch.Tensor  # buffers
    teacher_temperature: torch.Tensor
    recipe = Recipe(  # solo-learn scripts/pretrain/cifar/dino.yaml (optimizer block; augmentations: asymmetric)
        optimizer="lars",
        lr=0.3,
        weight_decay=1e-6,
        optimizer_args=SOLO_CIFAR_LARS,
        source="solo-learn scripts/pretrain/cifar/dino.yaml",
        classifier_lr=0.1,  # same file: optimizer.classifier_lr
        large=OptimValues(
            0.3, 1e-6, 0.1, "solo-learn scripts/pretrain/imagenet-100/dino.yaml"
        ),  # lr, weight_decay, classifier_lr
        heads_source="solo-learn solo/methods/dino.py",
        strong=StrongRecipe(small=SOLO_CIFAR_ASYMMETRIC, large=SOLO_IMAGENET_ASYMMETRIC),
    )

    def __init__(self, backbone, feat_dim: int, params: DINOParams, context: MethodContext):
        super().__init__(backbone)
        self.params, self.epochs = params, context.epochs
        hidden, out = params.proj_hidden_dim, params.proj_output_dim
        # solo-learn DINOHead (use_bn_in_head: False): Linear-GELU-Linear-GELU-Linear, truncated-normal
        # weights (std 0.02), zero biases; then L2 normalisation and the prototypes
        self.projector = nn.Sequential(
            nn.Linear(feat_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, out)
        )
        for layer in self.projector:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02, a=-2.0, b=2.0)
                nn.init.zeros_(layer.bias)
        self.prototypes = Prototypes(out, params.num_prototypes)
        self.target = MomentumTarget([backbone, self.projector, self.prototypes], params.tau_base, params.tau_final)
        self.register_buffer("center", torch.zeros(params.num_prototypes))
        self.register_buffer("teacher_temperature", torch.zeros(()))
        self._set_epoch(0)
        self._pending: torch.Tensor | None = None

    def teacher_temperature_at(self, epoch: int) -> float:
        """solo-learn's per-epoch schedule: linspace(warm-up value, final value, warm-up epochs), then final."""
        p = self.params
        if epoch >= p.warmup_teacher_temperature_epochs:
            return p.teacher_temperature
        steps = max(1, p.warmup_teacher_temperature_epochs - 1)
        return p.warmup_teacher_temperature + (p.teacher_temperature - p.warmup_teacher_temperature) * epoch / steps

    def _set_epoch(self, epoch: int) -> None:
        """The schedules' values for the epoch of the next step, written into buffers (saved with the run)."""
        self.teacher_temperature.fill_(self.teacher_temperature_at(epoch))
        self.prototypes.frozen.fill_(float(epoch < self.params.freeze_last_layer))

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.embed_pair(v1, v2)
        # each view gathered on its own: rows of view 1 of every rank, then of view 2
        student = torch.cat([gather(self.prototypes(self.projector(h))) for h in (h1, h2)])
        with torch.no_grad():
            teacher = torch.cat([gather(t) for t in self.embed_pair(v1, v2, self.target)])
        self._pending = teacher.float().mean(dim=0)  # the batch centre, applied after the step
        p = self.params
        return dino_loss(student, teacher, self.center, p.student_temperature, self.teacher_temperature)

    @torch.no_grad()
    def after_step(self, progress: float, started: float | None = None) -> None:
        """EMA of the teacher (tau at the step's start) and of the centre; the temperature and freeze for
        the next step's epoch."""
        self.target.update(progress if started is None else started)
        if self._pending is not None:
            self.center.lerp_(self._pending, 1.0 - self.params.center_momentum)
            self._pending = None
        self._set_epoch(min(int(progress * self.epochs), max(0, self.epochs - 1)))
