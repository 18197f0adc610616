"""What a run trains with, built from its config and data (RunParts, build_parts), and one training
step (PairStep). The training loop (benchmark/train.py), `gpsbench perf`, the sweep's cost probe and
the GPU check all assemble a run here, so they measure the same step.

Each step: anchor indices -> pair sampler -> gather both images from the uint8 tensor on the device
-> one batched augmentation call -> method loss -> optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.profiler import record_function

from benchmark.augment import BatchAugment, resolve_aug_params, run_views
from benchmark.backbones import build_backbone
from benchmark.config import RunConfig
from benchmark.data import DatasetSplits
from benchmark.distributed import Ranks, barrier, convert_batchnorm
from benchmark.errors import ConfigError
from benchmark.methods import MethodContext, SSLMethod, build_method
from benchmark.online import SCHEDULE, OnlineLinear, WithOnlineLinear
from benchmark.optim import add_scheduled_group, build_optimizer, resolve_optim, set_lr
from benchmark.pairing import GPSSetup, build_sampler
from benchmark.positives import MultiPositive, draw_positives

RANK_SEED_STRIDE = 1_000_003  # process r draws from seed + r * stride (rank 0: the seed itself)


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """The run's device; with several processes on a node, process i takes GPU i."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; valid: cpu, auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default; fp32 on the CPU, where bf16 matmuls are slow on most chips."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


@dataclass
class RunParts:
    """Everything a run trains with, built from a config and its data (shared with `gpsbench perf`)."""

    config: RunConfig
    data: DatasetSplits
    device: torch.device
    images: torch.Tensor  # training images, uint8 NHWC, on the device
    method: SSLMethod
    optimizer: torch.optim.Optimizer
    gps: GPSSetup  # the pair sampler and what building it cost
    augment: BatchAugment
    generator: torch.Generator  # this process's draws: positives and augmentations
    amp_dtype: torch.dtype | None
    optim: dict
    ranks: Ranks = Ranks()
    forward: torch.nn.Module | None = None  # the method, wrapped in DistributedDataParallel when distributed
    order_generator: torch.Generator | None = None  # several processes: the epoch order they all share
    refreshed_at: int = 0  # the epoch after which the neighbour table was last rebuilt (0: the prior's)
    online: OnlineLinear | None = None  # solo-learn's online linear classifier (`online_linear`)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.images) // self.config.batch_size

    def anchors(self, order: torch.Tensor, step: int) -> torch.Tensor:
        """This process's share of the step's global batch."""
        per_rank = self.config.batch_size // self.ranks.world_size
        start = step * self.config.batch_size + self.ranks.rank * per_rank
        return order[start : start + per_rank]


def check_batch(config: RunConfig, n_images: int, ranks: Ranks) -> None:
    """The global batch fits the training images and splits evenly over the processes."""
    if config.batch_size > n_images:
        raise ConfigError(
            f"batch_size {config.batch_size} exceeds the {n_images} training images of "
            f"{config.dataset}; valid: 2 to {n_images}"
        )
    if config.batch_size % ranks.world_size:
        raise ConfigError(
            f"batch_size {config.batch_size} does not split over {ranks.world_size} processes; "
            f"valid: a multiple of {ranks.world_size}"
        )


def build_parts(
    config: RunConfig,
    data: DatasetSplits,
    device: torch.device,
    results_dir: Path | None = None,
    ranks: Ranks | None = None,
) -> RunParts:
    """`batch_size` is the global batch: with W processes each trains on batch_size / W pairs a step,
    so the run (and its run_id, and its lr scaled by the batch) is the same on 1 or W GPUs."""
    ranks = ranks if ranks is not None else Ranks()
    n_images = len(data.pretrain)  # pretraining sees every training image (labels unused)
    check_batch(config, n_images, ranks)
    torch.manual_seed(config.seed)
    if device.type == "cuda":  # every step has the same shapes: let cuDNN time its convolution algorithms once
        torch.backends.cudnn.benchmark = True
    backbone, feat_dim = build_backbone(config.backbone, data.image_size, config.pretrained, config.weights)
    context = MethodContext(num_train=n_images, epochs=config.epochs)
    method = build_method(config.method, backbone, feat_dim, config.method_args, context).to(device)
    method = method.to(memory_format=torch.channels_last)
    optim = resolve_optim(config, config.recipe)  # the recipe file's values for the data set and size
    optimizer = build_optimizer(optim["optimizer"], method, optim["lr"], optim["weight_decay"], optim["optimizer_args"])
    online = None
    if config.online_linear:  # its heads: groups of their own in the same optimiser (benchmark/online.py)
        online = OnlineLinear.build(config, data, feat_dim, device)
        add_scheduled_group(optimizer, optim["optimizer"], optim["optimizer_args"], online.heads, online.lr)
    recipe_views = resolve_aug_params(config.aug, config.aug_args, data.image_size, method.recipe.strong)
    views = run_views(recipe_views, config.is_gps, config.neighbour_view)
    stream_seed = config.seed + RANK_SEED_STRIDE * ranks.rank
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed)
    forward, order_generator = _forward(config, method, online, device, ranks)
    if not ranks.is_main:
        barrier()  # rank 0 computes the prior embedding and neighbour table; the others read its cache
    gps = build_sampler(config, data, device, results_dir=results_dir)
    if ranks.is_main:
        barrier()
    return RunParts(
        config=config,
        data=data,
        device=device,
        images=torch.from_numpy(data.pretrain.images).to(device),
        method=method,
        optimizer=optimizer,
        gps=gps,
        augment=BatchAugment(views, data.mean, data.std, device, seed=stream_seed),
        generator=generator,
        amp_dtype=autocast_dtype(config.precision, device),
        optim=optim,
        ranks=ranks,
        forward=forward,
        order_generator=order_generator,
        online=online,
    )


def _forward(
    config: RunConfig, method: SSLMethod, online: OnlineLinear | None, device: torch.device, ranks: Ranks
) -> tuple[torch.nn.Module, torch.Generator | None]:
    """What the step calls: the method, its multi-positive loss (benchmark/positives.py), with the online
    classifier beside it, wrapped in DistributedDataParallel with several processes (and then the
    epoch order they all share)."""
    forward: torch.nn.Module = method
    if config.positives > 1:
        forward = MultiPositive(method, config.positives)
    if online is not None:
        forward = WithOnlineLinear(forward, method, online.heads)
    if not ranks.distributed:
        return forward, None
    from torch.nn.parallel import DistributedDataParallel

    convert_batchnorm(method)
    forward = DistributedDataParallel(
        forward, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
    )  # BatchNorm is global, queues are gathered
    order_generator = torch.Generator(device=device)
    order_generator.manual_seed(config.seed)
    return forward, order_generator


class PairStep:
    """One training step on a batch of anchor indices; also exposes the data path alone (`views`)."""

    def __init__(self, parts: RunParts):
        self.parts = parts
        forward: Callable[..., torch.Tensor] = parts.forward or parts.method
        if parts.config.compile:
            forward = torch.compile(forward)
        self.forward = forward

    def views(self, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The anchors' and the positives' augmented views and the positives' indices (one gather, one
        augmentation call); with `positives: m` the positives' m * B rows, laid out as benchmark/positives.py says."""
        p = self.parts
        with record_function("gps.sample"):
            positives = draw_positives(p.gps.sampler, anchors, p.generator, p.config.positives)
        with record_function("gps.gather"):
            both = p.images[torch.cat([anchors, positives])]
        with record_function("gps.augment"):
            if p.config.positives == 1:
                v1, v2 = p.augment(both, p.generator).chunk(2)
            else:
                v1, v2 = p.augment(both, p.generator, anchors=len(anchors)).split([len(anchors), len(positives)])
        return v1, v2, positives

    def losses(
        self, v1: torch.Tensor, v2: torch.Tensor, anchors: torch.Tensor, positives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The method's loss and, with `online_linear`, the online classifier's (None without)."""
        p = self.parts
        extra: dict = {"ids": (anchors, positives)} if p.method.uses_pair_ids else {}
        if p.online is not None:
            extra["labels"] = p.online.step_labels(anchors, positives)
        with torch.autocast(p.device.type, dtype=p.amp_dtype or torch.bfloat16, enabled=p.amp_dtype is not None):
            out = self.forward(v1, v2, **extra)
        if p.online is not None:
            loss, classifier = out
            return loss, classifier
        return out, None

    def loss(self, v1: torch.Tensor, v2: torch.Tensor, anchors: torch.Tensor, positives: torch.Tensor):
        """What one backward pass takes: the method's loss, plus the online classifier's."""
        loss, classifier = self.losses(v1, v2, anchors, positives)
        return loss if classifier is None else loss + classifier

    def __call__(
        self,
        anchors: torch.Tensor,
        lr: float,
        progress: float,
        classifier_lr: float | None = None,
        started: float | None = None,
    ) -> torch.Tensor:
        """One step at `lr` (the online classifier's groups at `classifier_lr`; None: as they are);
        `progress`: the share of training done after it, `started`: before it (momentum targets)."""
        p = self.parts
        v1, v2, positives = self.views(anchors)
        set_lr(p.optimizer, lr, p.optim["lr"], None if classifier_lr is None else {SCHEDULE: classifier_lr})
        with record_function("model.forward"):
            loss, classifier = self.losses(v1, v2, anchors, positives)
        with record_function("model.backward"):
            p.optimizer.zero_grad(set_to_none=True)
            (loss if classifier is None else loss + classifier).backward()
        with record_function("model.optimizer"):
            p.optimizer.step()
            p.method.after_step(progress, started)
        if classifier is not None and p.online is not None:
            p.online.loss_sum += classifier.detach()
        return loss.detach()
