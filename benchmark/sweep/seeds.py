"""Seeds until an interval is narrow enough (`seeds_until:` in a sweep file, `gpsbench sweep
--seeds-until-width W`): a cell whose runs are all done and whose t interval is still wider than the
width gets its next seed, up to `max_seeds`; done runs are never run again.

The interval is each cell's mean over seeds (the one `gpsbench table --ci` prints), or with `compare:
AXIS=BASE` the per-seed difference of each cell from its twin at BASE (`gpsbench table --compare-axis`);
then a pair too wide gets the next seed on both sides. Which seeds a cell has is read back from the
sweep folder each time (a seed beyond the grid counts once its run folder exists), so the plan grows
by one seed per cell per round whatever executor runs it: local and debug sweeps go round after round
until every interval is narrow enough or at `max_seeds`; on SLURM each invocation submits one round."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.rundir import read_json
from benchmark.runstate import RunState
from benchmark.scores import score
from benchmark.stats import t_half_width
from benchmark.sweep.plan import Plan, expand
from benchmark.sweep.run_views import states
from benchmark.sweep.seeds_rule import SEED, SeedsUntil


def _group(axes: dict[str, Any]) -> tuple:
    return tuple((axis, str(value)) for axis, value in axes.items() if axis != SEED)


def _named(group: tuple) -> str:
    return " ".join(f"{axis}={value}" for axis, value in group) or "the cell"


@dataclass
class Growth:
    """The plan with the seeds added so far and this round's, and what was added and why."""

    plan: Plan
    added: list[str]  # one line per cell given a seed this round
    settled: int  # cells whose interval is narrow enough
    capped: int  # cells at max_seeds and still too wide


def grow(spec, overrides, sweep_dir: Path, rule: SeedsUntil) -> Growth:
    """The sweep's plan, widened by the seeds `rule` has added (see the module docstring)."""
    limit = rule.width
    assert limit is not None, "seeds_rule gives grow a width"
    grid_seeds = list(spec.grid[SEED])
    candidates = grid_seeds + [max(grid_seeds) + i for i in range(1, rule.max_seeds - len(grid_seeds) + 1)]
    wide = expand(dataclasses.replace(spec, grid={**spec.grid, SEED: candidates}), overrides)
    base = expand(spec, overrides)
    cells: dict[tuple, dict[int, Any]] = {}  # group -> seed -> cell
    for cell in wide.cells:
        cells.setdefault(_group(cell.axes), {})[int(cell.axes[SEED])] = cell
    planned = {cell.run_id for cell in base.cells} | {
        cell.run_id for cell in wide.cells if (Path(sweep_dir) / cell.run_id).is_dir()
    }
    current = {g: {s: c for s, c in by_seed.items() if c.run_id in planned} for g, by_seed in cells.items()}
    found = states(sweep_dir, [c.run_id for by_seed in current.values() for c in by_seed.values()])

    wanted: dict[tuple, str] = {}  # group -> why it gets a seed
    settled = capped = 0
    for cases in _intervals(current, rule):
        found_values = [_values(current.get(g, {}), found, sweep_dir, rule.metric) for g in cases]
        measured = [m for m in found_values if m is not None]
        if len(measured) < len(cases):
            continue  # a run still to finish: judged next round
        if len(cases) == 1:
            numbers = list(measured[0].values())
        else:
            shared = sorted(set(measured[0]) & set(measured[1]))
            numbers = [measured[0][s] - measured[1][s] for s in shared]
        found_width = _width(numbers, rule.level)
        if found_width <= limit:
            settled += 1
            continue
        if any(len(current[g]) >= rule.max_seeds or len(current[g]) >= len(cells[g]) for g in cases):
            capped += 1
            continue
        for g in cases:
            wanted.setdefault(g, f"width {found_width:.2f} > {limit:g} with {len(numbers)} seeds")
    added = []
    for group, why in wanted.items():
        seed = min(s for s in cells[group] if s not in current[group])
        current[group][seed] = cells[group][seed]
        added.append(f"{_named(group)}: seed {seed} ({why})")
    chosen = {c.run_id for by_seed in current.values() for c in by_seed.values()}
    chosen |= _sources(wide, chosen)
    kept = [cell for cell in wide.cells if cell.run_id in chosen]
    plan = Plan(spec, kept, base.grid_size, base.excluded, base.collapsed)
    return Growth(plan, added, settled, capped)


def _values(by_seed: dict[int, Any], found: dict, sweep_dir: Path, metric: str) -> dict[int, float] | None:
    """Seed -> metric (shown units) when every planned run of a group is done, else None."""
    if not by_seed or any(found[c.run_id].state != RunState.DONE for c in by_seed.values()):
        return None
    result = {s: read_json(Path(sweep_dir) / c.run_id / "result.json").get(metric) for s, c in by_seed.items()}
    shown = score(metric).scaled
    return {s: shown(float(v)) for s, v in result.items() if v is not None}


def _width(numbers: list[float], level: float) -> float:
    """The full width of the t interval of the numbers' mean (infinite below two)."""
    if len(numbers) < 2:
        return float("inf")
    return float(2 * t_half_width(np.std(numbers, ddof=1), len(numbers), level))


def _intervals(current: dict[tuple, dict], rule: SeedsUntil) -> list[list[tuple]]:
    """The groups of each interval judged: one cell, or a compared cell and its twin at the base."""
    if rule.compare is None:
        return [[group] for group in current]
    axis, _, base = rule.compare.partition("=")
    pairs = []
    for group in current:
        named = dict(group)
        if named.get(axis, base) == base:
            continue
        twin = tuple((a, base if a == axis else v) for a, v in group)
        if twin in current:
            pairs.append([group, twin])
    return pairs


def _sources(plan, chosen: set[str]) -> set[str]:
    """The runs whose checkpoints the chosen runs take as their prior (`run:` cells)."""
    return {cell.depends_on for cell in plan.cells if cell.run_id in chosen and cell.depends_on}


def describe(growth: Growth, rule: SeedsUntil) -> str:
    what = f"the paired difference from {rule.compare}" if rule.compare else "each cell's mean"
    head = (
        f"  seeds until the {100 * rule.level:g}% t interval of {what} ({rule.metric}) is at most {rule.width:g} wide "
        f"(at most {rule.max_seeds} seeds): {growth.settled} narrow enough, {growth.capped} at the cap, "
        f"{len(growth.added)} given a seed"
    )
    return "\n".join([head] + [f"    + {line}" for line in growth.added])
