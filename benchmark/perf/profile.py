"""Where a training step's time goes: torch.profiler over a few pipeline steps, by the scopes that
PairStep marks (gps.sample, gps.gather, gps.augment, model.forward, model.backward, model.optimizer)
and by operator. This is the profile that explains the gap between `pipeline` and `ceiling`."""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

SCOPES = ("gps.sample", "gps.gather", "gps.augment", "model.forward", "model.backward", "model.optimizer")


def profile_steps(step: Callable[[], object], device: torch.device, steps: int) -> tuple[dict[str, dict], str]:
    """Each scope's share of the profiled host (CPU) time and, on a GPU, of the device time, and
    the operator table sorted by self time. Host shares show what keeps a GPU waiting (launches,
    syncs, Python); device shares show what it computes. `step` is warm: the timed measures ran it."""
    cuda = device.type == "cuda"
    if not cuda:  # a CUDA build of torch on a machine without a GPU: kineto would log a spurious ERROR line
        os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
    events = [e for e in prof.key_averages() if e.key in SCOPES]
    shares = {"host": _shares({e.key: e.cpu_time_total for e in events})}
    if cuda:
        shares["device"] = _shares({e.key: e.device_time_total for e in events})
    table = prof.key_averages().table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=25)
    return shares, table


def _shares(spent: dict[str, float]) -> dict[str, float]:
    total = sum(spent.values()) or 1.0
    return {scope: spent.get(scope, 0.0) / total for scope in SCOPES}
