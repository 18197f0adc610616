"""A sweep folder's manifest, sweep.json: the plan the sweep wrote (its axes and each run's run_id and
cell). The sweep writes it (benchmark/sweep/launch.py); status, the tidy frame and the tables read it
here, below both the sweep and the results."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmark.errors import DamagedFile
from benchmark.rundir import read_object

MANIFEST = "sweep.json"


def read_manifest(sweep_dir: Path) -> dict | None:
    """sweep.json as the sweep wrote it; None (after one warning line) when it is missing or damaged:
    then the run folders alone say what the sweep holds, and the next `gpsbench sweep` rewrites it."""
    path = Path(sweep_dir) / MANIFEST
    if not path.exists():  # (a folder in its place is damage, said as such)
        return None
    try:
        plan = read_object(path)
        runs = [(run["run_id"], {axis: str(run["axes"][axis]) for axis in plan["axes"]}) for run in plan["runs"]]
    except DamagedFile as err:
        problem = err.reason
    except (KeyError, TypeError) as err:
        problem = f"lacks {err}" if isinstance(err, KeyError) else f"malformed ({err})"
    else:
        return {**plan, "runs": [{"run_id": run_id, "axes": axes} for run_id, axes in runs]}
    print(
        f"gpsbench: warning: {path}: {problem}; listing the run folders instead (the next gpsbench sweep rewrites it)",
        file=sys.stderr,
    )
    return None
