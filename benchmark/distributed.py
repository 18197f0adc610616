"""One run over several processes (one per GPU, or gloo processes on the CPU): process-group set-up
from the environment submitit (or torchrun) exports, gathers that carry gradients, and a BatchNorm
whose statistics span all ranks.

Why the gradients come out right: a loss that needs the whole batch (SimCLR's negatives, VICReg's
and Barlow Twins' statistics) is computed on the gathered embeddings, identically on every rank. The
backward of the gather sums the gradients of all ranks' copies of the loss into each rank's slice
(W copies), and DistributedDataParallel divides by W: together, the gradient of the one full-batch
loss. Gathering without that sum is the classic bug that leaves gradients off by the world size.
A per-sample loss (BYOL) needs no gather: DDP's average of the per-rank means is the full mean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn as nn


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def ranks() -> Ranks:
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def init_from_env(device_type: str) -> Ranks:
    """Join the process group described by RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and LOCAL_RANK):
    NCCL on GPUs, gloo on the CPU. A single process (no WORLD_SIZE, or 1) stays alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return ranks()


def gather(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows, in rank order, with the gradient flowing back to each rank's own rows."""
    if not ranks().distributed:
        return x
    return torch.cat(dist_nn.all_gather(x.contiguous()))


def gather_ids(x: torch.Tensor) -> torch.Tensor:
    """All ranks' integer rows (no gradient)."""
    if not ranks().distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    if not ranks().distributed:
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on one (one tiny all-reduce)."""
    if not ranks().distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast(x: torch.Tensor) -> torch.Tensor:
    """Rank 0's values of x on every rank (in place; every rank passes a tensor of the same shape)."""
    if ranks().distributed:
        dist.broadcast(x, src=0)
    return x


def barrier() -> None:
    if ranks().distributed:
        dist.barrier()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch: per-channel sums and counts all-reduced (differentiably), so
    one step sees the statistics one process would see on the whole batch. torch's SyncBatchNorm does
    the same on GPUs only; this one also runs with gloo on the CPU, which is how it is tested."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and ranks().distributed):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        channels = x.shape[1]
        count = torch.full((1,), x.numel() / channels, device=x.device, dtype=torch.float32)
        stats = torch.cat([x.float().sum(dims), (x.float() ** 2).sum(dims), count])
        stats = dist_nn.all_reduce(stats)
        total = stats[-1]
        mean = stats[:channels] / total
        var = stats[channels : 2 * channels] / total - mean**2
        if self.track_running_stats and self.running_mean is not None:
            assert self.running_var is not None and self.num_batches_tracked is not None  # tracked together
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * total / (total - 1).clamp(min=1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
                self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x.float() - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d by a GlobalBatchNorm with the same parameters and statistics."""
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        converted.train(module.training)
        with torch.no_grad():
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            if module.track_running_stats:
                converted.running_mean = module.running_mean
                converted.running_var = module.running_var
                converted.num_batches_tracked = module.num_batches_tracked
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child))
    return module
