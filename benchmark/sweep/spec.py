"""A sweep file (`sweeps/*.yaml`): the grid, shared and per-axis settings, exclusions, resources and
W&B settings. Read and checked as a whole so every problem is reported at once, before anything runs."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from benchmark import shipped
from benchmark.config import WANDB_MODES, RunConfig
from benchmark.errors import ConfigError, Problem, Problems, choice_error
from benchmark.params import resolve_params
from benchmark.sweep.seeds_rule import SeedsUntil, check_grid
from benchmark.tracking import sweep_wandb_mode
from benchmark.yamlfiles import load_yaml

SWEEP_KEYS = ("name", "description", "include", "grid", "fixed", "per", "exclude", "resources", "wandb", "seeds_until")
ARG_SECTIONS = (
    "method_args",
    "aug_args",
    "prior_args",
    "sampling_args",
)  # dict-valued keys; `method_args.x` names one entry
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Resources:
    """What one run asks of the executor (per run, not per sweep)."""

    gpus: int = 0  # per node; several: one process per GPU, DistributedDataParallel
    nodes: int = 1
    tasks_per_node: int | None = None  # processes per node; None: one per GPU (at least one)
    cpus: int = 1  # per process
    mem_gb: float = 4.0
    timeout_min: int = 60
    max_attempts: int = 3  # bound on automatic requeues after preemption or time limits

    def validate(self) -> None:
        for name, low in (("nodes", 1), ("cpus", 1), ("timeout_min", 1), ("max_attempts", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"resources.{name} must be >= {low}, got {getattr(self, name)}")
        if self.tasks_per_node is not None and self.tasks_per_node < 1:
            raise ConfigError(f"resources.tasks_per_node must be >= 1 (or null), got {self.tasks_per_node}")

    @property
    def tasks(self) -> int:
        """Processes per node: one per GPU unless set."""
        return self.tasks_per_node or max(1, self.gpus)


@dataclass(frozen=True)
class WandbSettings:
    project: str = "gps-bench"
    entity: str | None = None
    mode: str | None = None  # None: env WANDB_MODE, else online with an API key, offline without

    def validate(self) -> None:
        if self.mode is not None and self.mode not in WANDB_MODES:
            raise choice_error("wandb.mode", self.mode, WANDB_MODES)

    def apply(self, config: RunConfig) -> RunConfig:
        """A sweep's or study's run: its W&B settings, no progress bar. The W&B group stays the cell's
        (tracking.cell_group) unless the config sets `wandb_group`."""
        return dataclasses.replace(
            config,
            wandb_mode=sweep_wandb_mode(config.wandb_mode or self.mode),
            wandb_project=self.project,
            wandb_entity=self.entity,
            progress=False,
        )


@dataclass(frozen=True)
class SweepSpec:
    name: str
    grid: dict[str, list]  # axis -> values, in file order
    fixed: dict[str, Any]
    per: dict[str, dict[Any, dict[str, Any]]]  # axis -> axis value -> overrides
    exclude: list[dict[str, list]]  # each: axis -> values; a cell matching every axis is skipped
    resources: Resources
    wandb: WandbSettings
    path: Path | None = None
    seeds_until: SeedsUntil | None = None  # add seeds until an interval is narrow enough (benchmark/sweep/seeds.py)

    @property
    def axes(self) -> list[str]:
        return list(self.grid)


CONFIG_KEYS = tuple(f.name for f in fields(RunConfig))


def check_config_key(key: str, where: str) -> Problem | None:
    """None when `key` names a config key (or one entry of method_args/aug_args/prior_args)."""
    section, dot, _ = key.partition(".")
    if dot:
        if section not in ARG_SECTIONS:
            return f"{where}: dotted key {key!r} must start with one of {', '.join(ARG_SECTIONS)}"
        return None
    if key not in CONFIG_KEYS:
        return choice_error("config key", key, CONFIG_KEYS, where)
    return None


def _mapping(value: Any, where: str, problems: list[Problem]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where} must be a mapping, got {type(value).__name__} {value!r}")
        return {}
    return value


def _parse_grid(raw: dict, problems: list[Problem]) -> dict[str, list]:
    grid: dict[str, list] = {}
    if not raw:
        problems.append("grid is empty: give at least one axis, e.g. grid: {seed: [0, 1, 2]}")
    for axis, values in raw.items():
        axis = str(axis)
        problem = check_config_key(axis, "grid")
        if problem:
            problems.append(problem)
            continue
        if not isinstance(values, list):
            problems.append(f"grid.{axis} must be a list of values, got {type(values).__name__} {values!r}")
            continue
        if not values:
            problems.append(f"grid.{axis} is empty: an empty axis makes an empty sweep")
            continue
        seen = [str(v) for v in values]
        duplicates = sorted({v for v in seen if seen.count(v) > 1})
        if duplicates:
            problems.append(f"grid.{axis} repeats {', '.join(duplicates)}")
        grid[axis] = values
    return grid


def _check_overrides(values: dict, where: str, grid: dict, problems: list[Problem]) -> None:
    for key in values:
        problem = check_config_key(str(key), where)
        if problem:
            problems.append(problem)
        elif key in grid:
            problems.append(f"{where}.{key} is also a grid axis: set it in one place")


def _parse_per(raw: dict, grid: dict, problems: list[Problem]) -> dict:
    per: dict = {}
    for axis, blocks in raw.items():
        if axis not in grid:
            problems.append(choice_error("grid axis", axis, grid, "per"))
            continue
        blocks = _mapping(blocks, f"per.{axis}", problems)
        on_axis = {str(v): v for v in grid[axis]}
        per[axis] = {}
        for value, overrides in blocks.items():
            if str(value) not in on_axis:
                problems.append(
                    f"per.{axis}: value {value!r} is not on the axis; valid: {', '.join(map(str, grid[axis]))}"
                )
                continue
            overrides = _mapping(overrides, f"per.{axis}.{value}", problems)
            _check_overrides(overrides, f"per.{axis}.{value}", grid, problems)
            per[axis][str(value)] = overrides
    return per


def _parse_exclude(raw: Any, grid: dict, problems: list[Problem]) -> list[dict[str, list]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"exclude must be a list of partial cells, e.g. [{{method: byol, aug: weak}}], got {raw!r}")
        return []
    rules = []
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or not entry:
            problems.append(f"exclude entry {i} must be a non-empty mapping of axis: value(s), got {entry!r}")
            continue
        rule = {}
        for axis, values in entry.items():
            if axis not in grid:
                problems.append(choice_error("grid axis", axis, grid, f"exclude entry {i}"))
                continue
            values = values if isinstance(values, list) else [values]
            on_axis = [str(v) for v in grid[axis]]
            for value in values:
                if str(value) not in on_axis:
                    problems.append(
                        f"exclude entry {i}: value {value!r} is not on axis {axis}; valid: {', '.join(on_axis)}"
                    )
            rule[axis] = [str(v) for v in values]
        rules.append(rule)
    return rules


def _read_includes(raw: Any, path: Path | None, problems: list[Problem]) -> dict:
    """`include: [file, ...]`: files holding a `per:` block (e.g. `gpsbench tune --export`), merged in
    order; the sweep's own `per` wins. Paths are relative to the sweep file, else to the working dir."""
    if raw is None:
        return {}
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.append(f"include must be a list of files, got {raw!r}")
        return {}
    merged: dict = {}
    for item in raw:
        candidates = [path.parent / item] if path else []
        found = next((c for c in [*candidates, Path(item)] if c.is_file()), None)
        if found is None:
            problems.append(f"include: file {item!r} not found (next to the sweep file or in the working dir)")
            continue
        try:
            content = load_yaml(found, "include file") or {}
        except ConfigError as err:
            problems.append(f"include: {err}")
            continue
        if not isinstance(content, dict) or set(content) - {"per"}:
            problems.append(f"include: {item!r} must hold only a `per:` block, got keys {sorted(content)}")
            continue
        merged = _merge_per(merged, _mapping(content.get("per"), f"include {item}: per", problems))
    return merged


def _merge_per(base: dict, override: dict) -> dict:
    merged = {
        axis: {value: dict(block) for value, block in blocks.items()}
        for axis, blocks in base.items()
        if isinstance(blocks, dict)
    }
    for axis, blocks in override.items():
        if not isinstance(blocks, dict):
            merged[axis] = blocks  # reported by _parse_per
            continue
        for value, block in blocks.items():
            merged.setdefault(axis, {})[value] = {**merged.get(axis, {}).get(value, {}), **(block or {})}
    return merged


def _settings(cls, raw: Any, section: str, problems: list[Problem]):
    try:
        return resolve_params(cls, _mapping(raw, section, problems), section, "a sweep")
    except ConfigError as err:
        problems.append(str(err))
        return cls()


def check_header(raw: Any, path: Path | None, what: str, keys: tuple[str, ...]) -> tuple[str, Any, list[Problem]]:
    """What sweep and tuning files share: a mapping of known keys with a `name` that is a folder name.
    Returns how to name the file in errors, the name, and the problems found so far."""
    where = f"{what} {str(path)!r}" if path else what
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must hold a mapping with keys {', '.join(keys)}")
    problems: list[Problem] = [choice_error(f"{what.split()[0]} key", key, keys) for key in raw if key not in keys]
    name = raw.get("name", path.stem if path else None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(f"name must be a folder name (letters, digits, _ . -), got {name!r}")
    return where, name, problems


def read_yaml(path: str | Path, what: str) -> tuple[Path, Any]:
    """A sweep or tuning file: the path as given, else (`sweeps/NAME.yaml`, `NAME.yaml` or `NAME`) the
    file of that name the suite ships, so the shipped sweeps run from an installed package too."""
    path = Path(path)
    if not path.is_file():
        found = shipped.find("sweeps", path.name) if path.parent in (Path("."), Path("sweeps")) else None
        if found is None:
            here = sorted(p.name for p in Path("sweeps").glob("*.yaml")) if Path("sweeps").is_dir() else []
            hint = f"; sweeps here: {', '.join(here)}" if here else ""
            hint += f"; shipped: {', '.join(shipped.names('sweeps'))}" if shipped.names("sweeps") else ""
            raise ConfigError(f"{what} {str(path)!r} does not exist{hint}")
        path = found
    return path, load_yaml(path, what)


def parse_sweep(raw: Any, path: Path | None = None) -> SweepSpec:
    """Check the structure of a sweep file (the runs themselves are checked when planned)."""
    if isinstance(raw, dict) and "space" in raw and "grid" not in raw:
        raise ConfigError(
            f"sweep file {str(path)!r} is a tuning file (it has a search space): run gpsbench tune {path}"
        )
    where, name, problems = check_header(raw, path, "sweep file", SWEEP_KEYS)
    grid = _parse_grid(_mapping(raw.get("grid"), "grid", problems), problems)
    fixed = _mapping(raw.get("fixed"), "fixed", problems)
    _check_overrides(fixed, "fixed", grid, problems)
    included = _read_includes(raw.get("include"), path, problems)
    per = _parse_per(_merge_per(included, _mapping(raw.get("per"), "per", problems)), grid, problems)
    exclude = _parse_exclude(raw.get("exclude"), grid, problems)
    resources = _settings(Resources, raw.get("resources"), "resources", problems)
    wandb = _settings(WandbSettings, raw.get("wandb"), "wandb", problems)
    seeds_until = None
    if raw.get("seeds_until") is not None:
        seeds_until = _settings(SeedsUntil, raw["seeds_until"], "seeds_until", problems)
        if seeds_until.width is not None:
            problems += check_grid(seeds_until, grid)
    if problems:
        raise ConfigError(format_problems(where, problems))
    return SweepSpec(
        name=name,
        grid=grid,
        fixed=fixed,
        per=per,
        exclude=exclude,
        resources=resources,
        wandb=wandb,
        path=path,
        seeds_until=seeds_until,
    )


def load_sweep(path: str | Path) -> SweepSpec:
    path, raw = read_yaml(path, "sweep file")
    return parse_sweep(raw, path)


def format_problems(where: str, problems: Sequence[Problem]) -> str:
    """One line per problem (repeats once), the valid names of each kind once after them."""
    return str(Problems(problems, where))
