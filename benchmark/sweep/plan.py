"""Grid -> runs. Each cell's config is fixed < per[axis][value] (in axis order) < the cell's own axis
values < command-line overrides, validated, and named by its run_id. A `run:<axis>=<value>,...` prior
is resolved to the run_id of the cell it names; cells that give the same run (prior none with several
k) collapse into one."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

from benchmark.config import RunConfig
from benchmark.errors import ConfigError, Problem, Problems, UnknownChoice
from benchmark.priors import is_plain
from benchmark.sweep.spec import ARG_SECTIONS, SweepSpec, format_problems

SELECTOR = "run:"


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: its place on the grid, its config and the run it takes its prior from."""

    axes: dict[str, Any]
    config: RunConfig
    run_id: str
    depends_on: str | None = None  # run_id of the cell whose checkpoint is this cell's prior

    @property
    def label(self) -> str:
        return axes_label(self.axes)

    @property
    def tags(self) -> list[str]:
        return [f"{axis}={value}" for axis, value in self.axes.items()]


def axes_label(axes: dict[str, Any]) -> str:
    """`method=simclr aug=weak ...`: how a cell is named in messages."""
    return " ".join(f"{axis}={value}" for axis, value in axes.items())


@dataclass
class Plan:
    spec: SweepSpec
    cells: list[Cell]  # distinct runs; a cell's prior source comes before it
    grid_size: int  # all combinations of the axes
    excluded: int
    collapsed: int  # grid cells that are the same run as an earlier one
    by_id: dict[str, Cell] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {cell.run_id: cell for cell in self.cells}


def is_selector(prior: Any) -> bool:
    return isinstance(prior, str) and prior.startswith(SELECTOR) and "=" in prior


def set_key(values: dict, key: str, value: Any) -> None:
    section, dot, entry = key.partition(".")
    if dot:
        values[section] = {**values.get(section, {}), entry: value}
    elif key in ARG_SECTIONS and isinstance(value, dict):
        values[key] = {**values.get(key, {}), **value}
    else:
        values[key] = value


def cell_values(spec: SweepSpec, axes: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in spec.fixed.items():
        set_key(values, key, value)
    for axis in spec.axes:
        for key, value in spec.per.get(axis, {}).get(str(axes[axis]), {}).items():
            set_key(values, key, value)
    for axis, value in axes.items():
        set_key(values, axis, value)
    return drop_k_without_prior(values)


def drop_k_without_prior(values: dict[str, Any]) -> dict[str, Any]:
    """k means nothing without a prior: such cells (or trials) are one plain-SSL run."""
    if is_plain(values.get("prior", RunConfig.prior)):
        values["k"] = 0
    return values


def _excluded(spec: SweepSpec, axes: dict[str, Any]) -> bool:
    return any(all(str(axes[axis]) in values for axis, values in rule.items()) for rule in spec.exclude)


def _key(axes: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(value) for value in axes.values())


def _source_axes(spec: SweepSpec, axes: dict[str, Any], selector: str) -> dict[str, Any]:
    """The axes of the cell a `run:a=x,b=y` prior names: this cell's, with prior none, then a=x, b=y."""
    target = dict(axes)
    if "prior" in target:
        target["prior"] = "none"
    for pair in selector[len(SELECTOR) :].split(","):
        axis, sep, value = pair.partition("=")
        axis, value = axis.strip(), value.strip()
        if not sep or axis not in spec.grid:
            raise ConfigError(f"prior {selector!r}: {axis!r} is not a grid axis; axes: {', '.join(spec.axes)}")
        on_axis = [str(v) for v in spec.grid[axis]]
        if value not in on_axis:
            raise ConfigError(f"prior {selector!r}: {value!r} is not on axis {axis}; valid: {', '.join(on_axis)}")
        target[axis] = spec.grid[axis][on_axis.index(value)]
    return target


# long: every cell expanded and validated in one pass, all problems gathered into one error
def expand(spec: SweepSpec, overrides: Sequence[str] = ()) -> Plan:
    """Every run of the sweep, validated; all problems are reported together in one ConfigError."""
    problems: dict[str, list[str]] = {}  # message -> labels of the cells that have it
    found: dict[str, Problem] = {}  # message -> the problem (an unknown name lists its valid choices once)
    combos = [dict(zip(spec.axes, values)) for values in itertools.product(*spec.grid.values())]
    kept = [axes for axes in combos if not _excluded(spec, axes)]
    if not kept:
        raise ConfigError(f"sweep {spec.name!r}: every cell of the grid is excluded")

    def build(axes: dict[str, Any], values: dict[str, Any]) -> RunConfig | None:
        try:
            config = RunConfig.from_dict(values)
            return config.with_overrides(list(overrides)) if overrides else config
        except ConfigError as err:
            for item in err.problems if isinstance(err, Problems) else [err]:
                found.setdefault(str(item), item)
                problems.setdefault(str(item), []).append(axes_label(axes))
            return None

    built: dict[tuple[str, ...], Cell] = {}
    dependents: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for axes in kept:
        values = cell_values(spec, axes)
        if is_selector(values.get("prior")):
            dependents.append((axes, values))
            continue
        config = build(axes, values)
        if config is not None:
            built[_key(axes)] = Cell(axes, config, config.run_id)
    for axes, values in dependents:
        selector = values["prior"]
        try:
            target = _source_axes(spec, axes, selector)
        except ConfigError as err:
            problems.setdefault(str(err), []).append(axes_label(axes))
            continue
        source = built.get(_key(target))
        if source is None:
            wanted = axes_label(target)
            problems.setdefault(
                f"prior {selector!r} names no cell of the sweep (no cell {wanted}: "
                f"excluded, not on the grid, or invalid)",
                [],
            ).append(axes_label(axes))
            continue
        config = build(axes, {**values, "prior": f"{SELECTOR}{source.run_id}"})
        if config is not None:
            built[_key(axes)] = Cell(axes, config, config.run_id, depends_on=source.run_id)
    if problems:
        lines: list[Problem] = []
        for message, labels in problems.items():
            where = (
                ""
                if len(labels) == len(kept)
                else f" (in {len(labels)} cell{'s' if len(labels) > 1 else ''}, e.g. {labels[0]})"
            )
            item = found.get(message, message)
            if isinstance(item, UnknownChoice):
                lines.append(UnknownChoice(item.kind, item.value, item.choices, note=where))
            else:
                lines.append(message + where)
        raise ConfigError(format_problems(f"sweep {spec.name!r}", lines))
    cells: dict[str, Cell] = {}
    for cell in sorted(built.values(), key=lambda c: c.depends_on is not None):
        cells.setdefault(cell.run_id, cell)
    return Plan(
        spec,
        list(cells.values()),
        grid_size=len(combos),
        excluded=len(combos) - len(kept),
        collapsed=len(built) - len(cells),
    )
