"""A sweep folder as one tidy pandas frame, for notebooks and for the tables and plots themselves.

`load(folder)`: one row per run (done or not): its state, the cell's grid axes, the resolved config
(nested blocks flattened: `method_args.temperature`) and every key of its result.json. `load(folder,
metrics=True)`: one row per run and epoch of metrics.jsonl. A damaged file never raises: its run reads
`corrupt` and the `problem` column names the file and what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import ConfigError, DamagedFile
from benchmark.planscope import flatten, scope
from benchmark.rundir import RESULT_KEYS, RunDir, is_run_id, parse_object, read_bytes, result_problem
from benchmark.runstate import RECORDED, RunState

# what every per-epoch row carries from its run (merge with load(folder) on run_id for the rest)
EPOCH_RUN_COLUMNS = ("run_id", "state", "method", "aug", "dataset", "dataset_name", "prior", "prior_label", "seed", "k")


def _typed(value: str) -> Any:
    """A grid axis as sweep.json stores it (text) -> the number it names, for runs with no files yet."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def dataset_name(dataset: str, data_path: str | None) -> str:
    """The data set's name in tables: a generic folder loader's runs are named by their data_path."""
    from benchmark.data import table_name

    return table_name(dataset, data_path)


def _object(path: str, problems: list[str]) -> dict | None:
    """The JSON object in `path`; None when the file is absent, or damaged (then in `problems`)."""
    try:
        return parse_object(read_bytes(path), path)
    except FileNotFoundError:
        return None
    except DamagedFile as err:
        problems.append(f"{err.path.name}: {err.reason}")
        return None


def _state(folder: str, status: dict | None, result: dict | None, problems: list[str]) -> str:
    """done only with a sound result.json; corrupt where a file says something it cannot."""
    if result is not None:
        return RunState.DONE
    if os.path.exists(os.path.join(folder, "result.json")):
        return RunState.CORRUPT
    if status is None:
        exists = os.path.exists(os.path.join(folder, "status.json"))
        return RunState.CORRUPT if exists else RunState.PENDING
    if status.get("state") not in RECORDED:
        problems.append(f"status.json: state {status.get('state')!r} is not one of {', '.join(RECORDED)}")
        return RunState.CORRUPT
    if status["state"] == RunState.DONE:
        problems.append("result.json: missing although status.json says done")
        return RunState.CORRUPT
    return str(status["state"])


def run_row(folder: str, axes: dict[str, str], with_config: bool) -> tuple[dict[str, Any], list[str]]:
    """One run's row (axes < config < result.json for the plain columns; `state` is done only with a
    sound result.json) and the keys its result.json gave. Plain os calls: 10,000 runs in seconds."""
    problems: list[str] = []
    row: dict[str, Any] = {"run_id": os.path.basename(folder), "state": None}
    status = _object(os.path.join(folder, "status.json"), problems)
    raw_config = _object(os.path.join(folder, "config.json"), problems) or {}
    result = _object(os.path.join(folder, "result.json"), problems)
    missing = [key for key in RESULT_KEYS if result is not None and key not in result]
    if missing:
        problems.append(f"result.json: lacks keys {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        result = None
    problem = result_problem(result) if result is not None else None
    name = os.path.basename(folder)
    if problem is None and result is not None and is_run_id(name) and result["run_id"] != name:
        problem = f"is the result of run {result['run_id']}, not {name}"
    if problem:
        problems.append(f"result.json: {problem}")
        result = None
    state = _state(folder, status, result, problems)
    config = flatten(raw_config) if with_config else {}
    row.update({key: _typed(value) for key, value in axes.items()})
    row.update(config)
    row.update(result or {})
    row.update({f"axis_{key}": value for key, value in axes.items()})
    row["prior_label"] = axes.get("prior", row.get("prior"))
    if "dataset" in row:
        row["dataset_name"] = dataset_name(row["dataset"], raw_config.get("data_path"))
    error = (status or {}).get("error")
    row.update(
        state=state,
        attempt=(status or {}).get("attempt"),
        error=str(error).strip().splitlines()[0] if error else None,
        problem="; ".join(problems) or None,
    )
    return row, list(result or ())


def load(folder: str | Path, config: bool = True, metrics: bool = False, earlier: bool = False) -> pd.DataFrame:
    """One tidy frame of a sweep folder (see the module's docstring; docs/tables.md).

    config=False leaves out the config columns (result keys, axes and state only); metrics=True gives
    the per-epoch frame instead: run_id, epoch, every logged key (loss, lr, val_knn_acc, ...) and the
    run's identifying columns (EPOCH_RUN_COLUMNS and the axes). The rows are the runs of the sweep's
    current plan, each once (benchmark/planscope.py); `earlier=True` adds those of an earlier plan
    with `plan` = "earlier" (the plan's: "current"). `frame.attrs["result_keys"]` lists the columns
    that came from result.json, `frame.attrs["planned"]` the runs sweep.json plans,
    `frame.attrs["notes"]` what was left out or counted once, and why.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"no sweep folder {str(folder)!r}")
    runs = scope(folder, earlier)
    rows, result_keys = [], set()
    for name, axes in runs.runs.items():
        row, keys = run_row(os.path.join(folder, name), axes, config)
        if earlier:
            row["plan"] = "earlier" if name in runs.earlier else "current"
        rows.append(row)
        result_keys.update(keys)
    _mark_non_numbers(rows, result_keys)
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "state", "problem"])
    frame.attrs.update(result_keys=sorted(result_keys), planned=runs.planned, notes=runs.notes)
    return epochs(folder, frame) if metrics else frame


def _mark_non_numbers(rows: list[dict[str, Any]], keys: set[str]) -> None:
    """A result key that is a number in some runs and something else in others: those others are
    damaged (`corrupt`, the key named), so that one run never turns a metric's column into text."""
    numeric = {k for k in keys if any(_is_number(row.get(k)) for row in rows if row["state"] == RunState.DONE)}
    for row in rows:
        bad = [k for k in sorted(numeric) if row["state"] == RunState.DONE and not _is_number(row.get(k), True)]
        if bad:
            row["state"] = RunState.CORRUPT
            note = f"result.json: {bad[0]} is {row.get(bad[0])!r:.60}, not a number"
            row["problem"] = "; ".join(filter(None, [row.get("problem"), note]))
            for key in bad:
                row[key] = None


def _is_number(value: Any, or_none: bool = False) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return or_none
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def epochs(folder: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run and epoch of metrics.jsonl (a torn or damaged line left out), with the run's
    identifying columns."""
    keep = [c for c in runs.columns if c in EPOCH_RUN_COLUMNS or c.startswith("axis_")]
    parts = []
    for row in runs[keep].to_dict("records"):
        records = RunDir(Path(folder) / row["run_id"]).read_metrics()
        if records:
            parts.append(pd.DataFrame(records).assign(**row))
    if not parts:
        return pd.DataFrame(columns=[*keep, "epoch"])
    frame = pd.concat(parts, ignore_index=True)
    return frame[keep + [c for c in frame.columns if c not in keep]]
