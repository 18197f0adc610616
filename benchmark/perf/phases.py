"""Each perf phase's figures as soon as they are measured (`gpsbench perf --phases FILE`).

`run_perf` calls `on_phase(name, figures, seconds)` after every phase (step, precision, recipes, knn,
registry). PhaseFile is that callback writing one JSON file, rewritten after each phase, so a perf
stopped in a later phase (Ctrl-C, a job's time limit) still leaves the figures of the earlier ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from benchmark.fileio import atomic_write_json

PhaseCallback = Callable[[str, Any, float], None]


def phase_figures(value: Any) -> Any:
    """A phase's figures as JSON values: a dataclass as its fields, less the operator profile table
    (it has a file of its own)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: v for k, v in dataclasses.asdict(value).items() if k != "profile_table"}
    return value


class PhaseFile:
    """The on_phase callback of `--phases FILE`: {phase: figures, ..., "phase_seconds": {phase: s}}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.found: dict[str, Any] = {"phase_seconds": {}}

    def __call__(self, phase: str, value: Any, seconds: float) -> None:
        self.found[phase] = phase_figures(value)
        self.found["phase_seconds"][phase] = seconds
        atomic_write_json(self.path, self.found)
        print(f"perf: phase {phase} measured in {seconds:.1f} s ({self.path})", flush=True)
