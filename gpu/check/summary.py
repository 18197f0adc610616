"""summary.json and runs.tar.gz, from the files as they are: steps.json (the plan and each step's
outcome), perf.json or, where perf was cut off, perf-phases.json, and the sweep's run folders. Called
whenever something changes, so a check stopped at any point leaves a summary of what it measured."""

from __future__ import annotations

import csv
import json
import os
import tarfile
from pathlib import Path

from gpu.check.commands import SWEEP_NAME
from gpu.check.options import REPO
from gpu.check.projection import extrapolate
from gpu.check.report import format_summary
from gpu.check.runs import RunProgress, read_json, read_runs, steady_epoch_seconds

PAPER_CSV = REPO / "results" / "reference" / "paper.csv"


def paper_numbers() -> dict[str, float]:
    """The published accuracies (percent) of SimCLR on CIFAR-10: {"weak", "weak gps", ...}: the official
    code's online classifier chosen on test (results/reference/paper.csv's metric), not a probe."""
    try:
        rows = [line for line in PAPER_CSV.read_text().splitlines() if line and not line.startswith("#")]
    except OSError:
        return {}
    numbers = {}
    for row in csv.DictReader(rows):
        if (row["dataset"], row["method"], row["lr"]) == ("cifar10", "simclr", ""):
            numbers[row["aug"] + (" gps" if row["gps"] == "True" else "")] = float(row["value"])
    return numbers


def run_summary(run: RunProgress) -> dict:
    return {
        "label": run.label,
        "run_id": run.run_id,
        "state": run.state,
        "epochs_done": len(run.epochs),
        "epochs_planned": run.planned_epochs,
        "steady_epoch_seconds": steady_epoch_seconds([run]),
        "wall_seconds": run.wall_seconds,
        "metrics": run.epochs,
        "result": run.result,
        "error": run.error,
        "traceback": run.traceback,
    }


def collect_summary(out: Path, work: Path) -> dict:
    """Everything measured so far, from the files alone."""
    steps = read_json(out / "steps.json") or {}
    perf = read_json(out / "perf.json")
    phases = read_json(out / "perf-phases.json")
    runs = read_runs(work / "results" / SWEEP_NAME)
    strong = next((r for r in runs if r.axes.get("aug") == "strong" and r.axes.get("prior") == "none"), None)
    return {
        "environment": steps.get("environment"),
        "steps": steps.get("steps", {}),
        "plan": steps.get("plan"),
        "perf": perf if perf else ({"partial": True, **phases} if phases else None),
        "precision": (perf or phases or {}).get("precision"),
        "runs": [run_summary(r) for r in runs],
        "extrapolated_200_epochs": extrapolate(strong) if strong else None,
        "extrapolated_200_epochs_each_run": {r.label: extrapolate(r) for r in runs},
        "paper_linear_acc": paper_numbers(),
    }


def write_runs_archive(sweep_dir: Path, archive: Path) -> None:
    """The sweep's run folders without checkpoints or hidden files, as one archive to keep or send."""
    tmp = archive.with_name(f".{archive.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(sweep_dir.rglob("*")):
            relative = path.relative_to(sweep_dir)
            if path.is_file() and path.suffix != ".pt" and not any(p.startswith(".") for p in relative.parts):
                tar.add(path, arcname=f"{SWEEP_NAME}/{relative}")
    os.replace(tmp, archive)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def snapshot(out: Path, work: Path, quiet: bool = True) -> dict:
    """summary.json and runs.tar.gz from the files as they are; printed unless `quiet`."""
    summary = collect_summary(out, work)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    sweep_dir = work / "results" / SWEEP_NAME
    if sweep_dir.is_dir():
        write_runs_archive(sweep_dir, out / "runs.tar.gz")
    if not quiet:
        print(format_summary(summary, out), flush=True)
    return summary
