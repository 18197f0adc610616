"""The check itself: perf, then the sweep at the most epochs that fit, each under its limit from the time
plan, steps.json rewritten after each, and the summary at the end (also of whatever a cut-off step left)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu.check.commands import SWEEP_NAME, perf_command, sweep_command, sweep_overrides
from gpu.check.environment import archive_places, find_data_path, machine, step_environment
from gpu.check.options import CheckError
from gpu.check.plan import SWEEP_GRACE_S, TimePlan
from gpu.check.runs import read_json
from gpu.check.steps import StepOutcome, run_step
from gpu.check.summary import atomic_write, snapshot
from gpu.check.watch import SweepWatch

# what a check writes into --out besides check.log; a new check removes an earlier one's first
OUT_FILES = ("steps.json", "perf.json", "perf-profile.txt", "perf-phases.json", "summary.json", "runs.tar.gz")


@dataclass
class Check:
    args: argparse.Namespace
    out: Path
    work: Path
    data_path: Path
    plan: TimePlan
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict:
        return step_environment(self.work)

    def save(self, name: str | None = None, outcome: StepOutcome | None = None) -> None:
        """steps.json with `name`'s outcome, and the summary refreshed."""
        if name is not None and outcome is not None:
            self.record["steps"][name] = dataclasses.asdict(outcome)
        atomic_write(self.out / "steps.json", json.dumps(self.record, indent=2) + "\n")
        snapshot(self.out, self.work)

    def perf(self) -> None:
        sizes = self.args.sizes
        cmd = perf_command(self.args.device, sizes, self.data_path, self.work / "data", self.out)
        self.save("perf", run_step("perf", cmd, self.env, self.plan.perf_limit()))

    def sweep(self) -> None:
        args, sizes = self.args, self.args.sizes
        limit = self.plan.sweep_limit()
        perf_report = read_json(self.out / "perf.json") or read_json(self.out / "perf-phases.json") or {}
        epochs, basis = self.plan.sweep_epochs(limit, sizes.epochs, perf_report)
        self.record["plan"].update(epochs=epochs, epochs_basis=basis)
        print(f"[check] sweep: {epochs} epochs ({basis})", flush=True)
        overrides = sweep_overrides(args.device, sizes, epochs, self.data_path, self.work / "data", args.sets)
        cmd = sweep_command(overrides, self.work / "results")
        sweep_dir = self.work / "results" / SWEEP_NAME
        watch = SweepWatch(sweep_dir, epochs, time.time() + limit, limit, self.out, self.work, args.on_behind)
        self.save("sweep", run_step("sweep", cmd, self.env, limit, SWEEP_GRACE_S, watch=watch))


def prepare(args: argparse.Namespace) -> Check:
    """Every input checked first (nothing is touched when one is bad), then --out and --work made ready:
    an earlier check's files removed there."""
    plan = TimePlan(args.budget, args.steps)
    env = machine(args.device)
    if args.device.startswith("cuda") and not env["cuda_available"]:
        raise CheckError(
            f"--device {args.device}, but torch {env['torch']} sees no CUDA device; --device cpu runs the check "
            "at small sizes"
        )
    data_path = find_data_path(args.data_path, args.from_bundle)
    if data_path is None:
        looked = args.data_path or " or ".join(str(p) for p in archive_places(args.from_bundle))
        raise CheckError(f"no CIFAR-10 archive at {looked}: give --data-path (docs/gpu-check.md, Data)")
    out, work = args.out.resolve(), args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    for name in OUT_FILES:  # a summary must not report an earlier check's files
        (out / name).unlink(missing_ok=True)
    if not args.keep_runs:  # timings of runs reused from an earlier check would mean nothing
        shutil.rmtree(work / "results" / SWEEP_NAME, ignore_errors=True)
    plan_record = {"budget_s": args.budget, "device": args.device, **dataclasses.asdict(args.sizes)}
    record = {"environment": env, "steps": {}, "plan": {**plan_record, "data_path": str(data_path)}}
    return Check(args, out, work, data_path, plan, record)


def run_check(check: Check) -> int:
    """The steps asked for, then the summary: 0 when every step is done, 1 when one failed, was cut off
    or was skipped."""
    args, env = check.args, check.record["environment"]
    print(
        f"[check] {env['device_name']}, torch {env['torch']}, {env['cpu_count']} CPUs; budget {args.budget:.0f} s; "
        f"out {check.out}; work {check.work}",
        flush=True,
    )
    check.save()
    if "perf" in args.steps:
        check.perf()
    if "sweep" in args.steps:
        check.sweep()
    check.record["total_seconds"] = time.time() - check.plan.start
    check.save()
    snapshot(check.out, check.work, quiet=False)
    unfinished = [name for name, step in check.record["steps"].items() if step["outcome"] != "done"]
    return 1 if unfinished else 0
