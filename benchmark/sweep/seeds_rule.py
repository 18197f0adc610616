"""The sweep file's `seeds_until:` block (or `gpsbench sweep --seeds-until-width W`) and what it needs
of the grid, checked when the sweep file is read; benchmark/sweep/seeds.py grows the plan by it."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.errors import ConfigError

SEED = "seed"


@dataclass(frozen=True)
class SeedsUntil:
    """The sweep file's `seeds_until:` block."""

    # the interval's full width, in the metric's shown units (points for an accuracy); None: only
    # with `gpsbench sweep --seeds-until-width W`
    width: float | None = None
    metric: str = "linear_acc"
    compare: str | None = None  # AXIS=BASE: the interval of the paired difference from BASE
    max_seeds: int = 10
    level: float = 0.95

    def validate(self) -> None:
        if self.width is not None and not self.width > 0:
            raise ConfigError(f"seeds_until.width must be > 0 (points for an accuracy), got {self.width}")
        if self.max_seeds < 2:
            raise ConfigError(f"seeds_until.max_seeds must be >= 2, got {self.max_seeds}")
        if not 0 < self.level < 1:
            raise ConfigError(f"seeds_until.level must be between 0 and 1, got {self.level}")
        if self.compare is not None:
            axis, sep, base = self.compare.partition("=")
            if not sep or not axis or not base:
                raise ConfigError(f"seeds_until.compare takes AXIS=BASE (e.g. prior=none), got {self.compare!r}")


def check_grid(rule: SeedsUntil, grid: dict[str, list]) -> list[str]:
    """What the grid must have for the rule: integer seeds on a seed axis, and the compared axis."""
    problems = []
    if SEED not in grid:
        problems.append("seeds_until adds seeds to the grid's seed axis: add one, e.g. grid: {seed: [0, 1, 2]}")
    elif not all(isinstance(s, int) and not isinstance(s, bool) for s in grid[SEED]):
        problems.append(f"seeds_until needs integer seeds on the seed axis, got {grid[SEED]}")
    elif len(grid[SEED]) > rule.max_seeds:
        problems.append(f"seeds_until.max_seeds={rule.max_seeds} is below the grid's {len(grid[SEED])} seeds")
    if rule.compare is not None:
        axis, _, base = rule.compare.partition("=")
        if axis not in grid:
            problems.append(f"seeds_until.compare: {axis!r} is not a grid axis; axes: {', '.join(grid)}")
        elif base not in [str(v) for v in grid[axis]]:
            values = ", ".join(str(v) for v in grid[axis])
            problems.append(f"seeds_until.compare: {base!r} is not on axis {axis}; valid: {values}")
    return problems
