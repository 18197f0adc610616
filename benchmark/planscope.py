"""Which run folders of a sweep folder are the runs of its current plan. A sweep's `name:` can be used
again with another grid or other fixed values: its folder then also holds the runs of an earlier plan;
and a folder can hold a copy of, or a link to, another run's folder. `table`, `status` and
`results.load` count each run of the current plan (sweep.json) once; the others are reported (how many,
which keys differ) and shown on request (`--earlier`), never pooled with the plan's runs:

- a folder sweep.json lists: the plan's run;
- a folder named by a run_id that sweep.json does not list, whose files name that run: an earlier plan's;
- a folder not named by the run_id its files name (a copy, a rename): reported, never counted;
- a link to another run folder, or the same folder reached twice: counted once.

Without a sweep.json (a folder of `train --out` runs) every run folder counts, each run_id once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import DamagedFile
from benchmark.manifest import read_manifest
from benchmark.rundir import is_run_id, read_object

RUN_FILES = ("status.json", "config.json", "result.json", "metrics.jsonl", "checkpoint.pt")
SHOWN_KEYS = 4  # keys that differ, named in a note


@dataclass
class Scope:
    """The runs a command shows, in order: folder name -> the cell's axes (sweep.json's)."""

    runs: dict[str, dict[str, str]]
    planned: int  # runs of the current plan (sweep.json's, or every run folder without one)
    has_plan: bool
    earlier: list[str] = field(default_factory=list)  # folders of an earlier plan (in `runs` when asked for)
    notes: list[str] = field(default_factory=list)  # one line each: what was left out and why


def _named(path: Path) -> str | None:
    """The run_id the folder's files name (status.json's, else result.json's), None when none does."""
    for name in ("status.json", "result.json"):
        try:
            value = read_object(path / name).get("run_id")
        except (FileNotFoundError, DamagedFile):
            continue
        if isinstance(value, str) and value:
            return value
    return None


def _holds_run_files(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


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


def _flat_config(path: Path) -> dict[str, Any] | None:
    try:
        return flatten(read_object(path / "config.json"))
    except (FileNotFoundError, DamagedFile):
        return None


def differing_keys(folder: Path, current: list[str], earlier: list[str], sample: int = 200) -> str:
    """`epochs 1 (this plan: 2), seed 2 (this plan: 0, 1)`: the experiment keys whose values in the
    earlier runs' config.json the current plan's runs never have."""
    from benchmark.config import RunConfig  # here: status and table start without torch

    experiment = {name for name in RunConfig().result_fields()} | {"data_path"}
    now = [c for c in (_flat_config(folder / name) for name in current[:sample]) if c is not None]
    then = [c for c in (_flat_config(folder / name) for name in earlier[:sample]) if c is not None]
    if not now or not then:
        return "no config.json of both plans to compare"
    keys = sorted({k for c in now + then for k in c if k.split(".", 1)[0] in experiment})
    parts = []
    for key in keys:
        was = {str(c.get(key)) for c in then}
        is_now = {str(c.get(key)) for c in now}
        if was - is_now:
            parts.append(f"{key} {', '.join(sorted(was - is_now))} (this plan: {', '.join(sorted(is_now))})")
    if not parts:
        return "no experiment key differs"
    more = f", and {len(parts) - SHOWN_KEYS} more" if len(parts) > SHOWN_KEYS else ""
    return "keys that differ: " + "; ".join(parts[:SHOWN_KEYS]) + more


def _folders(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def _dedupe(folder: Path, names: list[str], preferred: set[str], notes: list[str]) -> list[str]:
    """One name per real folder (a link, or one folder reached twice, counts once), the preferred first."""
    kept: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (n not in preferred, os.path.islink(folder / n), n)):
        real = os.path.realpath(folder / name)
        if real in kept:
            how = "a link to" if os.path.islink(folder / name) else "the same folder as"
            notes.append(f"{name} is {how} {kept[real]}: counted once")
            continue
        kept[real] = name
    return [name for name in names if name in kept.values()]


def scope(folder: str | Path, earlier: bool = False) -> Scope:
    """The runs of `folder` to count (see the module's docstring); `earlier` adds an earlier plan's."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    plan = {run["run_id"]: run["axes"] for run in manifest["runs"]} if manifest else {}
    notes: list[str] = []
    present = [name for name in _folders(folder) if name in plan or _holds_run_files(folder / name)]
    present = _dedupe(folder, present, set(plan), notes)
    if manifest is None:
        return Scope(_one_per_run_id(folder, present, notes), len(present), False, notes=notes)
    runs = dict(plan)
    others = [name for name in present if name not in plan]
    earlier_runs = []
    for name in others:
        named = _named(folder / name)
        if is_run_id(name) and named in (None, name):
            earlier_runs.append(name)
        elif named:
            notes.append(f"{name}: a folder not named by its run {named} (a copy?): not counted; rename or remove it")
        else:
            notes.append(f"{name}: not a run folder of this sweep (no run_id names it): not counted")
    if earlier_runs:
        diff = differing_keys(folder, [n for n in plan if n in present], earlier_runs)
        count = len(earlier_runs)
        notes.append(
            f"{count} run{'s' if count > 1 else ''} of an earlier plan of this sweep (not in sweep.json; {diff})"
            + (": shown, marked plan=earlier" if earlier else ": not counted; --earlier shows them")
        )
        if earlier:
            runs.update({name: {} for name in earlier_runs})
    return Scope(runs, len(plan), True, earlier_runs, notes)


def _one_per_run_id(folder: Path, names: list[str], notes: list[str]) -> dict[str, dict[str, str]]:
    """Without a plan: every run folder, but two folders whose files name one run count once (the one
    named by it first)."""
    named = {name: _named(folder / name) for name in names}
    kept: dict[str, str] = {}
    dropped = set()
    for name in sorted(names, key=lambda n: (named[n] != n, n)):
        run_id = named[name]
        if run_id is None:
            continue
        if run_id in kept:
            notes.append(f"{name} holds run {run_id} too (as {kept[run_id]} does): counted once")
            dropped.add(name)
        else:
            kept[run_id] = name
    return {name: {} for name in names if name not in dropped}
