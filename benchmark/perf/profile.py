"""Where a training step's time goes: torch.profiler over a few pipeline steps, by the scopes that
PairStep marks (gps.sample, gps.gather, gps.augment, model.forward, model.backward, model.optimizer)
and by operator. This is the profile that explains the gap between `pipeline` and `ceiling`."""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

SCOPES = ("gps.sample", "gps.gather", "gps.augment", "model.forward", "model.backward", "model.optimizer")


def profile_steps(step: Callable[[], None], device: torch.device, steps: int) -> tuple[dict[str, float], str]:
    """Each scope's share of the profiled time (device time on a GPU, CPU time otherwise), and the
    operator table sorted by self time. `step` is warm: the timed measures ran it before."""
    cuda = device.type == "cuda"
    if not cuda:  # a CUDA build of torch on a machine without a GPU: kineto would log a spurious ERROR line
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.key_averages()
    spent = {e.key: (e.device_time_total if cuda else e.cpu_time_total) for e in events if e.key in SCOPES}
    total = sum(spent.values()) or 1.0
    shares = {scope: spent.get(scope, 0.0) / total for scope in SCOPES}
    table = events.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=25)
    return shares, table
