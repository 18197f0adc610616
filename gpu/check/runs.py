"""What the sweep's run folders hold so far: each planned run's state, its epochs (metrics.jsonl), its
result, and when it began and ended (config.json's and result.json's times). Read from the files alone,
so a sweep cut off at any point still reads."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunProgress:
    run_id: str
    label: str  # "SimCLR strong", "GPS-SimCLR weak (prior: strong-DA run)", ...
    axes: dict
    state: str  # new, running, pending, failed, done
    epochs: list[dict] = field(default_factory=list)  # metrics.jsonl
    result: dict | None = None
    planned_epochs: int | None = None
    started: float | None = None  # config.json's mtime: the run began
    finished: float | None = None  # result.json's mtime
    error: str | None = None
    traceback: str | None = None

    @property
    def epoch_seconds(self) -> list[float]:
        return [float(m["epoch_seconds"]) for m in self.epochs]

    @property
    def wall_seconds(self) -> float | None:
        return self.finished - self.started if self.started and self.finished else None


def run_label(axes: dict) -> str:
    method = {"simclr": "SimCLR"}.get(str(axes.get("method")), str(axes.get("method")))
    prior = str(axes.get("prior", "none"))
    gps = prior != "none"
    label = f"{'GPS-' if gps else ''}{method} {axes.get('aug')}"
    return label + (" (prior: strong-DA run)" if prior.startswith("run:") else f" (prior: {prior})" if gps else "")


def read_json(path: Path) -> dict | None:
    """A JSON object, or None where the file is missing or half-written."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_metrics(path: Path) -> list[dict]:
    """The complete lines of metrics.jsonl (a torn last line is left out)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    epochs = []
    for line in lines:
        try:
            epochs.append(json.loads(line))
        except ValueError:
            continue
    return epochs


def read_run(folder: Path, run_id: str, axes: dict) -> RunProgress:
    status = read_json(folder / "status.json") or {}
    config = read_json(folder / "config.json") or {}
    result = read_json(folder / "result.json")
    run = RunProgress(
        run_id,
        run_label(axes),
        axes,
        status.get("state", "new"),
        read_metrics(folder / "metrics.jsonl"),
        result,
        config.get("epochs"),
        error=status.get("error"),
        traceback=status.get("traceback"),
    )
    if (folder / "config.json").is_file():
        run.started = (folder / "config.json").stat().st_mtime
    if result is not None:
        run.finished = (folder / "result.json").stat().st_mtime
    return run


def read_runs(sweep_dir: Path) -> list[RunProgress]:
    """Every planned run of the sweep, in plan order, with what its folder holds so far."""
    manifest = read_json(sweep_dir / "sweep.json") or {}
    return [read_run(sweep_dir / e["run_id"], e["run_id"], e["axes"]) for e in manifest.get("runs", [])]


def steady_epoch_seconds(runs: list[RunProgress]) -> float | None:
    """Median seconds of the epochs after each run's first (compilation, cuDNN autotuning)."""
    later = [s for run in runs for s in run.epoch_seconds[1:]]
    return statistics.median(later) if later else None
