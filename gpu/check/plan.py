"""The time plan: each step's limit within the budget, and the sweep's epoch count chosen from the speed
perf measured (an estimate where it measured none). The estimates are for one modern datacenter GPU on
CIFAR-10 with ResNet-18 and batch 512; the sweep's watcher replaces them by measured values as epochs
and runs finish (projection.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# ---- step limits, seconds
PERF_SHARE = 0.3  # of the budget at most for gpsbench perf --quick, compiled, with its precision check
SWEEP_MIN_S = 120  # perf never takes the time the sweep needs to plan and train its first epochs
SUMMARY_RESERVE_S = 15
SWEEP_GRACE_S = 15  # a stopped sweep: SIGINT (its run saves `pending`), SIGKILL this much later

# ---- estimates that choose the epoch count before the sweep measures anything
PLANNED_RUNS = 3
MOST_EPOCHS = 200
EPOCH_S_ESTIMATE = 1.8  # a prototype of the step on an H200: 55,000 views/s, 100,000 views an epoch (docs/design.md)
FIRST_RUN_SETUP_S = 30  # data from the cache, model, torch.compile (inductor's cache warm from perf)
COLD_COMPILE_S = 45  # more for the first run when perf did not compile the same step before it
RUN_SETUP_S = 15  # each later run: its model compiled again, from inductor's cache
EVAL_S = 20  # final kNN + linear probe: features of 60,000 images, L-BFGS over 6 strengths, refit
ONLINE_EVAL_S = 1.5  # one validation kNN (fp32 features of 50,000 images)
GPS_SETUP_S = 10  # the GPS run: its prior's embedding of 50,000 images and the exact top-k table
CURVE_POINTS = 6  # validation kNN points per run: eval_every = epochs // CURVE_POINTS
SAFETY = 1.15  # the epoch count is chosen for this much slower than estimated
BEHIND_SLACK = 0.05  # stop the sweep when its projected end passes the deadline by this share of its limit


def eval_every(epochs: int) -> int:
    return max(1, epochs // CURVE_POINTS)


def fixed_seconds(epochs: int, runs: int = PLANNED_RUNS, cold: bool = False) -> float:
    """Estimated seconds of the sweep outside its training epochs (`cold`: nothing compiled before it)."""
    online = ONLINE_EVAL_S * (epochs // eval_every(epochs))
    return (
        FIRST_RUN_SETUP_S
        + (COLD_COMPILE_S if cold else 0)
        + (runs - 1) * RUN_SETUP_S
        + runs * (EVAL_S + online)
        + GPS_SETUP_S
    )


def choose_epochs(
    limit_s: float, epoch_s: float, runs: int = PLANNED_RUNS, most: int = MOST_EPOCHS, cold: bool = False
) -> int:
    """The most epochs (1..most) whose sweep, each epoch SAFETY times slower than `epoch_s`, fits."""
    best = 1
    for epochs in range(1, most + 1):
        if fixed_seconds(epochs, runs, cold) + runs * epochs * epoch_s * SAFETY <= limit_s:
            best = epochs
    return best


def epoch_seconds_from_perf(report: dict, train_images: int | None = None) -> float | None:
    """Seconds per epoch at perf's pipeline speed (2 views of each training image), from perf's report
    or from its phases file (where the step's figures sit under `step`)."""
    step = report.get("step") or {}
    figures = report.get("figures_images_per_s") or step.get("figures") or {}
    pipeline = figures.get("pipeline")
    images = train_images or (report.get("setup") or step.get("setup") or {}).get("train_images")
    if not pipeline or not images:
        return None
    return 2 * images / pipeline


@dataclass
class TimePlan:
    """The budget from the check's start, shared out among the steps asked for."""

    budget: float
    steps: list[str]
    start: float = field(default_factory=time.time)

    def left(self) -> float:
        return self.start + self.budget - time.time()

    def perf_limit(self) -> float:
        later = (SWEEP_MIN_S if "sweep" in self.steps else 0) + SUMMARY_RESERVE_S
        return min(PERF_SHARE * self.budget, self.left() - later)

    def sweep_limit(self) -> float:
        return self.left() - SUMMARY_RESERVE_S

    def sweep_epochs(self, limit: float, given: int | None, perf_report: dict) -> tuple[int, str]:
        """The sweep's epochs and why: as given, else the most that fit `limit` at perf's speed."""
        if given is not None:
            return given, "given"
        measured = epoch_seconds_from_perf(perf_report)
        epoch_s = measured if measured is not None else EPOCH_S_ESTIMATE
        cold = measured is None  # perf did not compile the step: the first run compiles from scratch
        epochs = choose_epochs(limit, epoch_s, cold=cold)
        source = "from perf's pipeline figure" if measured is not None else "estimated (perf gave no pipeline figure)"
        return epochs, (
            f"{epoch_s:.2f} s per epoch {source}, x{SAFETY} safety, {fixed_seconds(epochs, cold=cold):.0f} s "
            f"estimated outside epochs, {limit:.0f} s for the sweep"
        )
