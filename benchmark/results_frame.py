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
from benchmark.manifest import read_manifest
from benchmark.rundir import RESULT_KEYS, RunDir, parse_object
from benchmark.runstate import RECORDED, RunState

# what every per-epoch row carries from its run (merge with load(folder) on run_id for the rest)
EPOCH_RUN_COLUMNS = ("run_id", "state", "method", "aug", "dataset", "dataset_name", "prior", "prior_label", "seed", "k")


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"method_args": {"temperature": 0.2}} -> {"method_args.temperature": 0.2}; an empty block
    gives no column."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


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
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        return parse_object(data, path)
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


def planned(folder: Path) -> tuple[dict[str, dict[str, str]], list[str] | None]:
    """run_id -> axes from sweep.json, plus every run folder it does not list; and the run_ids
    sweep.json plans (None without a sound one)."""
    manifest = read_manifest(folder)
    runs = {run["run_id"]: run["axes"] for run in manifest["runs"]} if manifest else {}
    listed = list(runs) if manifest else None
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith("."):
                runs.setdefault(entry.name, {})
    return runs, listed


def load(folder: str | Path, config: bool = True, metrics: bool = False) -> pd.DataFrame:
    """One tidy frame of a sweep folder (see the module's docstring; docs/tables.md).

    config=False leaves out the config columns (result keys, axes and state only); metrics=True gives
    the per-epoch frame instead: run_id, epoch, every logged key (loss, lr, val_knn_acc, ...) and the
    run's identifying columns (EPOCH_RUN_COLUMNS and the axes). `frame.attrs["result_keys"]` lists the
    columns that came from result.json, `frame.attrs["planned"]` the runs sweep.json plans.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"no sweep folder {str(folder)!r}")
    runs, manifest = planned(folder)
    rows, result_keys = [], set()
    for run_id, axes in runs.items():
        row, keys = run_row(os.path.join(folder, run_id), axes, config)
        rows.append(row)
        result_keys.update(keys)
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["run_id", "state", "problem"])
    frame.attrs.update(result_keys=sorted(result_keys), planned=len(manifest) if manifest is not None else len(runs))
    return epochs(folder, frame) if metrics else frame


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
