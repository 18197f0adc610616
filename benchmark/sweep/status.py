"""What a sweep folder holds: one row per run (state, attempt, job, progress, accuracies, error), read
from our own files, with live jobs checked (`gpsbench status`). A damaged file shows as its run's
state `corrupt` with the file and the reason; a damaged sweep.json as one warning line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.errors import DamagedFile
from benchmark.manifest import MANIFEST
from benchmark.planscope import scope
from benchmark.rundir import RunDir, read_object
from benchmark.runstate import LIVE, SWEEP_STATES, RunState
from benchmark.sweep.run_views import JobProbe, run_state


def _config_epochs(run: RunDir) -> int | None:
    try:
        return read_object(run.config).get("epochs") if run.config.is_file() else None
    except DamagedFile:
        return None


def status_frame(sweep_dir: Path, earlier: bool = False) -> pd.DataFrame:
    """One row per run of the current plan (benchmark/planscope.py; `earlier`: and of an earlier one,
    marked so); `frame.attrs["notes"]` says what was left out or counted once."""
    sweep_dir = Path(sweep_dir)
    probe = JobProbe()
    rows = []
    runs = scope(sweep_dir, earlier)
    for run_id, axes in runs.runs.items():
        run = RunDir(sweep_dir / run_id)
        state = run_state(run.path, probe)
        status = state.status
        epochs = _config_epochs(run)
        logged = run.read_metrics()
        result = run.read_result() if state.state == RunState.DONE else {}
        slurm = probe.slurm_state(status) if state.state in LIVE else None
        rows.append(
            {
                **{axis: str(value) for axis, value in axes.items()},
                "run_id": run_id,
                "state": state.state + (f" ({slurm})" if slurm else ""),
                "attempt": state.attempt,
                "job": status.get("job_id") or "",
                "epoch": f"{logged[-1]['epoch'] if logged else 0}/{epochs}" if epochs is not None else "",
                "knn_acc": result.get("knn_acc"),
                "linear_acc": result.get("linear_acc"),
                "message": ("[earlier plan] " if run_id in runs.earlier else "") + state.message[:100],
                "_state": state.state,
                "_earlier": run_id in runs.earlier,
            }
        )
    frame = pd.DataFrame(rows)
    frame.attrs["notes"] = runs.notes
    return frame


def counts_line(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no runs"
    earlier = frame["_earlier"] if "_earlier" in frame else pd.Series(False, index=frame.index)
    current = frame[~earlier]
    counts = current["_state"].value_counts()
    parts = [f"{counts[s]} {s}" for s in SWEEP_STATES if s in counts]
    also = f" (and {int(earlier.sum())} of an earlier plan, shown above)" if earlier.any() else ""
    return f"{len(current)} runs: " + ", ".join(parts) + also


def format_status(sweep_dir: Path, frame: pd.DataFrame | None = None) -> str:
    """The table and its counts line; `frame`: status_frame(sweep_dir) when the caller has it already."""
    frame = status_frame(sweep_dir) if frame is None else frame
    if frame.empty:
        return f"{sweep_dir}: no runs (no {MANIFEST} and no run folders)"
    shown = frame.drop(columns=[c for c in ("_state", "_earlier") if c in frame])
    for column in ("knn_acc", "linear_acc"):
        shown[column] = shown[column].map(lambda v: "" if v is None or pd.isna(v) else f"{100 * v:.2f}")
    return shown.to_string(index=False) + "\n" + counts_line(frame)
