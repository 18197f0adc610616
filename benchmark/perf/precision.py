"""bf16 autocast against fp32 on the run's first training steps (`gpsbench perf --precision-check N`).

Both precisions train the same config from the same seed, eager (no torch.compile), with the run's
own lr schedule and TF32 off (a GPU would otherwise run fp32 matmuls and convolutions in TF32), so the
only difference is the autocast. Each step's loss, side by side, with the relative difference: bf16
training is trusted where its losses track fp32's within PRECISION_RTOL.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from typing import Iterator

import torch

PRECISION_RTOL = 0.02  # relative loss difference per step that still counts as agreeing
COMPARED = ("bf16", "fp32")


@contextmanager
def strict_fp32(device: torch.device) -> Iterator[None]:
    """fp32 means fp32 on a GPU: no TF32 matmuls or convolutions; the previous flags come back after."""
    if device.type != "cuda":
        yield
        return
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def first_losses(config, data, device: torch.device, steps: int) -> tuple[list[tuple[float, float]], float]:
    """(lr, loss) of the run's first `steps` training steps (the real step, the run's lr schedule and
    anchor order), and the seconds they took."""
    from benchmark.assembly import PairStep, build_parts
    from benchmark.optim import lr_at

    parts = build_parts(config, data, device)
    step = PairStep(parts)
    per_epoch = parts.steps_per_epoch
    total = per_epoch * config.epochs
    warmup = parts.optim["warmup_epochs"] * per_epoch
    order = torch.randperm(len(parts.images), generator=parts.generator, device=device)
    losses = []
    started = time.perf_counter()
    for i in range(min(steps, per_epoch)):
        lr = lr_at(i, total, warmup, parts.optim["lr"], parts.optim["warmup_start_lr"])
        losses.append((lr, float(step(parts.anchors(order, i), lr, (i + 1) / total))))
    seconds = time.perf_counter() - started
    del step, parts
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return losses, seconds


def precision_check(config, data, device: torch.device, steps: int) -> dict:
    """Per step: the loss with bf16 autocast and in fp32, and their relative difference; the worst
    difference and whether it is within PRECISION_RTOL."""
    eager = dataclasses.replace(config, compile=False)
    losses: dict[str, list[tuple[float, float]]] = {}
    seconds: dict[str, float] = {}
    with strict_fp32(device):
        for precision in COMPARED:
            losses[precision], seconds[precision] = first_losses(
                dataclasses.replace(eager, precision=precision), data, device, steps
            )
    rows = [
        {"step": i + 1, "lr": lr, "bf16": bf16, "fp32": fp32, "rel_diff": abs(bf16 - fp32) / max(abs(fp32), 1e-12)}
        for i, ((lr, bf16), (_, fp32)) in enumerate(zip(losses["bf16"], losses["fp32"]))
    ]
    worst = max((row["rel_diff"] for row in rows), default=None)
    return {
        "setup": f"{config.method} {config.aug} DA, prior {config.prior}, {config.backbone}, batch "
        f"{config.batch_size}, seed {config.seed}, {device}, eager, TF32 off, the lr schedule of a "
        f"{config.epochs}-epoch run",
        "steps": rows,
        "max_rel_diff": worst,
        "tolerance": PRECISION_RTOL,
        "agree": None if worst is None else worst <= PRECISION_RTOL,
        "seconds": seconds,
    }


def precision_lines(report: dict) -> list[str]:
    """The check as text: one line per step and the verdict."""
    lines = [f"precision check (bf16 autocast vs fp32): {report['setup']}"]
    lines += [
        f"  step {row['step']:>3}  lr {row['lr']:.3g}  bf16 {row['bf16']:.6f}  fp32 {row['fp32']:.6f}  "
        f"rel diff {row['rel_diff']:.2e}"
        for row in report["steps"]
    ]
    if report["max_rel_diff"] is None:
        return lines + ["  no step compared (the run has no full batch)"]
    verdict = "agree" if report["agree"] else "DIFFER"
    lines.append(
        f"  max relative difference {report['max_rel_diff']:.2e} over {len(report['steps'])} step(s): "
        f"{verdict} (tolerance {report['tolerance']})"
    )
    return lines
