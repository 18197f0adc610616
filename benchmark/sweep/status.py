"""What a sweep folder holds: one row per run (state, attempt, job, progress, accuracies, error), read
from our own files, with live jobs checked (`gpsbench status`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmark.rundir import RunDir, read_json
from benchmark.sweep.registry import RUN_STATES, JobProbe, run_state

MANIFEST = "sweep.json"


def planned_runs(sweep_dir: Path) -> dict[str, dict]:
    """run_id -> axes, from the manifest the sweep wrote, plus any run folder it does not list."""
    sweep_dir = Path(sweep_dir)
    manifest = sweep_dir / MANIFEST
    runs = {}
    if manifest.is_file():
        plan = read_json(manifest)
        runs = {run["run_id"]: {axis: run["axes"][axis] for axis in plan["axes"]} for run in plan["runs"]}
    for path in sorted(sweep_dir.glob("*/status.json")):
        runs.setdefault(path.parent.name, {})
    return runs


def _epochs_done(run: RunDir) -> int:
    if not run.metrics.is_file():
        return 0
    lines = [line for line in run.metrics.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1])["epoch"] if lines else 0


def status_frame(sweep_dir: Path) -> pd.DataFrame:
    sweep_dir = Path(sweep_dir)
    probe = JobProbe()
    rows = []
    for run_id, axes in planned_runs(sweep_dir).items():
        run = RunDir(sweep_dir / run_id)
        state = run_state(run.path, probe)
        status = state.status
        epochs = read_json(run.config).get("epochs") if run.config.is_file() else None
        result = read_json(run.result) if state.state == "done" else {}
        slurm = probe.slurm_state(status) if state.state in ("running", "queued") else None
        rows.append({
            **{axis: str(value) for axis, value in axes.items()},
            "run_id": run_id,
            "state": state.state + (f" ({slurm})" if slurm else ""),
            "attempt": state.attempt,
            "job": status.get("job_id") or "",
            "epoch": f"{_epochs_done(run)}/{epochs}" if epochs is not None else "",
            "knn_acc": result.get("knn_acc"),
            "linear_acc": result.get("linear_acc"),
            "message": (status.get("error") or status.get("note") or "")[:80],
            "_state": state.state,
        })
    return pd.DataFrame(rows)


def counts_line(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no runs"
    counts = frame["_state"].value_counts()
    parts = [f"{counts[s]} {s}" for s in RUN_STATES if s in counts]
    return f"{len(frame)} runs: " + ", ".join(parts)


def format_status(sweep_dir: Path) -> str:
    frame = status_frame(sweep_dir)
    if frame.empty:
        return f"{sweep_dir}: no runs (no {MANIFEST} and no run folders)"
    shown = frame.drop(columns="_state")
    for column in ("knn_acc", "linear_acc"):
        shown[column] = shown[column].map(lambda v: "" if v is None or pd.isna(v) else f"{100 * v:.2f}")
    return shown.to_string(index=False) + "\n" + counts_line(frame)
