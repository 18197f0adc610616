"""A dry run's estimate for runs no done run has measured yet: a few real training steps of the run's
kind (its data, backbone, method, image size and batch) on this machine, timed. Plain pairs (no prior,
which would mean computing an embedding and a neighbour table first): the pair sampler is a small
share of a step, so the estimate is of training, not of the one-off prior, nor of the evaluation."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from benchmark.config import RunConfig
from benchmark.errors import ConfigError

WARMUP_STEPS = 1  # the first step allocates and (on CUDA) picks kernels: never counted
TIMED_STEPS = 2


@dataclass(frozen=True)
class Probe:
    seconds_per_step: float
    steps_per_epoch: int
    device: str

    def run_seconds(self, config: RunConfig) -> float:
        return self.seconds_per_step * self.steps_per_epoch * config.epochs


def probe(config: RunConfig) -> Probe:
    """Time TIMED_STEPS training steps of `config`'s kind on this machine (after WARMUP_STEPS)."""
    import torch

    from benchmark.assembly import PairStep, build_parts, select_device
    from benchmark.data import load_run_data

    plain = dataclasses.replace(config, prior="none", k=0, compile=False, wandb_mode="disabled", progress=False)
    data = load_run_data(plain)
    device = select_device(plain.device)
    parts = build_parts(plain, data, device)
    step = PairStep(parts)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(parts.images), generator=generator).to(device)
    timings = []
    for i in range(WARMUP_STEPS + TIMED_STEPS):
        anchors = order[(i % parts.steps_per_epoch) * plain.batch_size :][: plain.batch_size]
        start = time.perf_counter()
        step(anchors, parts.optim["lr"], 0.0).item()  # .item(): wait for the device
        timings.append(time.perf_counter() - start)
    timed = timings[WARMUP_STEPS:]
    return Probe(sum(timed) / len(timed), parts.steps_per_epoch, device.type)


def probe_estimate(configs: list[RunConfig], key) -> tuple[float, int, list[str]] | None:
    """Seconds of training for `configs` from one probe per kind of run (`key(config)`), how many runs
    that covers, and why some kinds could not be probed (their data is missing, say)."""
    probes: dict[tuple, Probe | None] = {}
    problems: list[str] = []
    total, covered = 0.0, 0
    for config in configs:
        kind = key(config)
        if kind not in probes:
            try:
                probes[kind] = probe(config)
            except (ConfigError, RuntimeError, OSError) as err:
                probes[kind] = None
                problems.append(f"{config.dataset} {config.method}: {err}")
        found = probes[kind]
        if found is not None:
            total += found.run_seconds(config)
            covered += 1
    return (total, covered, problems) if covered or problems else None
