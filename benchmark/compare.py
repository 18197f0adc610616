"""Paired comparisons of a sweep's runs: is A better than B, and by how much?

Two runs of one sweep that differ in one setting and share a seed share their data split and their
initialisation, so their difference is measured per seed. A comparison names the runs compared and
their twins: by default every GPS run against its plain twin (the same cell with prior none), or the
runs of each value of an axis against the runs of a base value (`--compare-axis prior=none`,
`positives=1`, `aug=weak`). Twins match on every other grid axis and the seed; an axis on which the
base runs have one value while the compared runs have several is shared by them (k, with prior none,
collapses into one plain run).

From the per-seed differences: the mean difference and its paired t interval (`difference_table`,
marked where it excludes zero), the seeds a paired test needs to detect a given difference
(`seeds_table`), and aggregates across cells (`aggregates`: interquartile mean and probability of
improvement with stratified bootstrap intervals; `profiles`: performance profiles)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pandas as pd

from benchmark import stats
from benchmark.errors import ConfigError, choice_error
from benchmark.results import MISSING, Table, build_table, prior_text, with_variants
from benchmark.scores import Score, check_metric

FALLBACK_KEYS = ("dataset", "method", "aug")  # the twin keys of runs without sweep.json axes


@dataclass(frozen=True)
class Comparison:
    """Which runs are compared with which: `axis` None compares each GPS run with its plain twin;
    else the runs at each value of `axis` with those at `base`."""

    axis: str | None = None
    base: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> "Comparison":
        """`prior=none` -> Comparison("prior", "none"); None or "" -> GPS against plain."""
        if not text:
            return cls()
        axis, sep, base = text.partition("=")
        if not sep or not axis.strip() or not base.strip():
            raise ConfigError(f"--compare-axis takes AXIS=BASE (e.g. prior=none, positives=1), got {text!r}")
        return cls(axis.strip(), base.strip())

    @property
    def base_name(self) -> str:
        return "plain SSL" if self.axis is None else f"{self.axis}={self.base}"

    def name(self, value: str) -> str:
        """How a compared value is named: `GPS (pixel)`, `positives=2`."""
        return f"GPS ({prior_text(value)})" if self.axis is None else f"{self.axis}={value}"

    @property
    def title(self) -> str:
        return "GPS - plain twin" if self.axis is None else f"each {self.axis} - {self.axis}={self.base}"

    @property
    def sides_title(self) -> str:
        return "GPS and plain SSL" if self.axis is None else f"each {self.axis} and {self.axis}={self.base}"


@dataclass
class Sides:
    """The runs a comparison compares (`compared`, with their compared value in `_value`), their
    twins (`base`) and the columns twins share (`keys`; the seed aside)."""

    compared: pd.DataFrame
    base: pd.DataFrame
    keys: list[str]


def sides(frame: pd.DataFrame, comparison: Comparison) -> Sides:
    """Split done runs into compared and base runs and find the columns their twins share."""
    if frame.empty:
        raise ConfigError("no done runs to compare")
    frame = with_variants(frame)
    axes = [c for c in frame.columns if c.startswith("axis_")]
    if comparison.axis is None:
        base, compared = frame[~frame["gps"]], frame[frame["gps"]]
        values = compared["prior_label"].astype(str)
        left_out = {"axis_seed", "axis_prior", "axis_k"}
    else:
        column = f"axis_{comparison.axis}" if f"axis_{comparison.axis}" in frame else comparison.axis
        if column not in frame:
            raise choice_error("--compare-axis axis", comparison.axis, [c[5:] for c in axes] or FALLBACK_KEYS)
        on_axis = frame[column].astype(str)
        if comparison.base not in set(on_axis):
            raise choice_error(f"--compare-axis base value of {comparison.axis}", comparison.base, sorted(set(on_axis)))
        base, compared = frame[on_axis == comparison.base], frame[on_axis != comparison.base]
        values = on_axis[on_axis != comparison.base]
        left_out = {"axis_seed", column}
    keys = [c for c in axes if c not in left_out] if axes else [c for c in FALLBACK_KEYS if c in frame]
    if comparison.axis is not None and not axes:
        keys = [c for c in keys if c != comparison.axis]
    shared = [c for c in keys if base[c].nunique(dropna=False) == 1 and compared[c].nunique(dropna=False) > 1]
    keys = [c for c in keys if c not in shared]
    return Sides(compared.assign(_value=values), base, keys)


def twins(frame: pd.DataFrame, metric: str, comparison: Comparison) -> pd.DataFrame:
    """One row per compared run that has a base twin of the same seed: the compared run's columns,
    `twin` (the twin's metric) and `difference` (run - twin)."""
    side = sides(frame, comparison)
    if side.compared.empty or side.base.empty:
        raise ConfigError(
            f"nothing to compare: {len(side.compared)} runs to compare and {len(side.base)} "
            f"{comparison.base_name} runs among the done runs"
        )
    key = side.keys + ["seed"]
    base = side.base.groupby(key, dropna=False)[metric].mean().rename("twin").reset_index()
    paired = side.compared.merge(base, on=key, how="inner")
    paired["difference"] = paired[metric] - paired["twin"]
    return paired


class DifferenceTable(Table):
    """Per cell, the mean per-seed difference with its paired t interval; bold where it excludes zero."""

    comparison: Comparison = Comparison()

    def interval(self, row, col) -> tuple[float, float]:
        low, high = self.bounds()
        return low.at[row, col], high.at[row, col]

    def cell(self, row, col) -> str:
        n = self.n.at[row, col]
        if pd.isna(n) or n == 0:
            return MISSING
        signed = _signed(self.score)
        mean = signed(self.mean.at[row, col])
        if n < 2:
            return f"{mean} (one pair)"
        low, high = self.interval(row, col)
        return f"{mean} [{signed(low)}, {signed(high)}]" + (f" (n={int(n)})" if n < self.planned_seeds else "")

    def best(self) -> dict:
        """The cells whose interval excludes zero (bold)."""
        marked: dict = {}
        for row in self.mean.index:
            for col in self.mean.columns:
                if self.n.at[row, col] >= 2 and stats.excludes_zero(*self.interval(row, col)):
                    marked.setdefault(col, set()).add(row)
        return marked

    def footer(self) -> str:
        unit = "points" if self.score.percent else "as the metric"
        level = f"{100 * (self.level or stats.LEVEL):g}%"
        split = f"; rows also split by {', '.join(self.split_by)}" if self.split_by else ""
        return (
            f"{self.metric} difference ({unit}), {self.comparison.title}, paired by seed: mean [{level} t interval "
            f"over the seed pairs]; bold: the interval excludes zero; n where below {self.planned_seeds} pairs{split}"
        )


def _signed(score: Score):
    digits = 4 if score.digits is None else score.digits
    return lambda value: f"{score.scaled(value):+.{digits}f}"


def difference_table(
    frame: pd.DataFrame,
    counts: dict[str, int],
    metric: str,
    comparison: Comparison,
    rows: list[str] | None = None,
    cols: list[str] | None = None,
    level: float | None = None,
) -> DifferenceTable:
    """The paired differences laid out as the cell table (same rows and columns)."""
    check_metric(frame, metric)
    paired = twins(frame, metric, comparison)
    if paired.empty:
        raise ConfigError(f"no compared run has a {comparison.base_name} twin of the same seed among the done runs")
    differences = paired.drop(columns=[metric]).rename(columns={"difference": metric})
    differences = differences.drop(columns=["variant", "gps", "uses_labels"])
    differences.attrs = dict(frame.attrs)
    built = build_table(differences, counts, metric, rows, cols, level=level or stats.LEVEL)
    table = DifferenceTable(**{name: getattr(built, name) for name in built.__dataclass_fields__})
    table.comparison = comparison
    table.upper_bounds = set()
    return table


def check_level(level: float | None) -> None:
    if level is not None and not 0 < level < 1:
        raise ConfigError(f"--ci takes a confidence level between 0 and 1 (0.95 for 95%), got {level:g}")


# ----------------------------------------------------------------------------- seeds needed
class SeedsTable(Table):
    """Per cell, the seeds a two-sided t test at 5% needs to detect a difference with power 0.8, from
    the cell's per-seed std: paired (a difference table's std of the differences) or two groups (a
    cell table's std, against another cell as spread)."""

    difference: float = 1.0
    paired: bool = False

    def cell(self, row, col) -> str:
        std = self.std.at[row, col]
        if pd.isna(std):
            return MISSING
        seeds = stats.seeds_needed(float(std), self.difference, self.paired)
        return MISSING if seeds is None else f">{stats.MAX_SEEDS}" if seeds > stats.MAX_SEEDS else str(seeds)

    def best(self) -> dict:
        return {}

    def footer(self) -> str:
        shown = self.score.scaled(self.difference)
        unit = (" point" if shown == 1 else " points") if self.score.percent else ""
        how = (
            "a paired t test on the per-seed differences (their observed std)"
            if self.paired
            else "a two-sample t test between this cell and another of the same per-seed std, seeds per cell"
        )
        return (
            f"seeds needed to detect a difference of {shown:g}{unit} in {self.metric} with power "
            f"{stats.POWER:g} (two-sided, 5%): {how}; – where a cell has one seed"
        )


def seeds_table(table: Table, difference: float, paired: bool) -> SeedsTable:
    """`table`'s cells as the seeds needed to detect `difference` (in the metric's own units)."""
    seeds = SeedsTable(**{name: getattr(table, name) for name in table.__dataclass_fields__})
    seeds.difference, seeds.paired = difference, paired
    return seeds


def in_metric_units(score: Score, shown: float) -> float:
    """A difference as the user writes it (points for an accuracy) in the metric's own units."""
    return shown / 100 if score.percent else shown


# ----------------------------------------------------------------------------- aggregates
@dataclass(frozen=True)
class Aggregate:
    """One compared value against the base over a set of tasks (cells), each with several seeds."""

    name: str
    base_name: str
    group: str  # the values of the `by` axes this aggregate is limited to ("" for all)
    tasks: int
    runs: int
    base_runs: int
    iqm: stats.Estimate
    base_iqm: stats.Estimate
    improvement: stats.Estimate  # P(compared > base)


def _tasks(frame: pd.DataFrame, metric: str, comparison: Comparison, by: list[str]) -> Iterator[tuple]:
    """(compared value, by-group label, {task: scores of the compared runs}, {task: scores of the base
    runs}) per compared value and group: tasks are the twin keys that both sides have runs of."""
    side = sides(frame, comparison)
    scale = check_metric(frame, metric).scaled
    by_columns = [f"axis_{axis}" if f"axis_{axis}" in frame else axis for axis in by]
    for column, axis in zip(by_columns, by):
        if column not in frame:
            raise choice_error("--aggregate axis", axis, [k[5:] if k.startswith("axis_") else k for k in side.keys])
    task_keys = [k for k in side.keys if k not in by_columns]
    for value, compared in side.compared.groupby("_value", sort=False):
        groups = compared.groupby(by_columns, sort=False) if by_columns else [((), compared)]
        for group_values, group in groups:
            group_values = group_values if isinstance(group_values, tuple) else (group_values,)
            base = side.base
            for column, v in zip(by_columns, group_values):
                base = base[base[column] == v]
            mine = {k: scale(g[metric].to_numpy(float)) for k, g in _by_task(group, task_keys)}
            theirs = {k: scale(g[metric].to_numpy(float)) for k, g in _by_task(base, task_keys)}
            shared = [k for k in mine if k in theirs]
            label = ", ".join(f"{a}={v}" for a, v in zip(by, group_values))
            yield value, label, {k: mine[k] for k in shared}, {k: theirs[k] for k in shared}


def _by_task(frame: pd.DataFrame, keys: list[str]):
    if not keys:
        return [((), frame)] if len(frame) else []
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in frame.groupby(keys, sort=False, dropna=False)]


def aggregates(
    frame: pd.DataFrame, metric: str, comparison: Comparison, by: list[str] | None = None, level: float | None = None
) -> list[Aggregate]:
    """Per compared value (and per value of the `by` axes): the IQM of its runs and of the base's over
    the tasks both have, and the probability that a run of it beats a run of the base, each with a
    stratified bootstrap percentile interval (tasks are strata)."""
    level = level or stats.LEVEL
    found = []
    for value, group, mine_by_task, theirs_by_task in _tasks(frame, metric, comparison, by or []):
        if not mine_by_task:
            continue
        mine, theirs = list(mine_by_task.values()), list(theirs_by_task.values())
        found.append(
            Aggregate(
                comparison.name(value),
                comparison.base_name,
                group,
                len(mine),
                sum(len(t) for t in mine),
                sum(len(t) for t in theirs),
                stats.iqm_estimate(mine, level),
                stats.iqm_estimate(theirs, level),
                stats.improvement_estimate(mine, theirs, level),
            )
        )
    if not found:
        raise ConfigError(f"no task has runs of both sides of the comparison ({comparison.title})")
    return found


def aggregate_frame(found: list[Aggregate]) -> pd.DataFrame:
    """The aggregates as numbers, one row each (what `--format csv` writes)."""
    rows = []
    for a in found:
        row = {"compared": a.name, "base": a.base_name, "over": a.group or "all", "tasks": a.tasks}
        row.update(runs=a.runs, base_runs=a.base_runs)
        for name, estimate in (("iqm", a.iqm), ("base_iqm", a.base_iqm), ("improvement", a.improvement)):
            row.update({name: estimate.value, f"{name}_low": estimate.low, f"{name}_high": estimate.high})
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate_text(
    found: list[Aggregate], metric: str, score: Score, level: float | None = None, kind: str = "markdown"
) -> str:
    """The aggregates as a table in the format of `gpsbench table` (Markdown, LaTeX or CSV), with a
    footer that says what they are."""
    if kind == "csv":
        return aggregate_frame(found).to_csv(index=False)
    level = level or stats.LEVEL
    digits = 2 if score.digits is None else score.digits

    def text(estimate: stats.Estimate, places: int = digits) -> str:
        return f"{estimate.value:.{places}f} [{estimate.low:.{places}f}, {estimate.high:.{places}f}]"

    shown = pd.DataFrame(
        {
            "compared": [f"{a.name} vs {a.base_name}" for a in found],
            "over": [a.group or "all" for a in found],
            "tasks": [a.tasks for a in found],
            "runs (base)": [f"{a.runs} ({a.base_runs})" for a in found],
            "IQM": [text(a.iqm) for a in found],
            "IQM of base": [text(a.base_iqm) for a in found],
            "P(compared > base)": [text(a.improvement, 2) for a in found],
        }
    )
    marked = [a.improvement.excludes(0.5) for a in found]
    unit = ", %" if score.percent else ""
    footer = (
        f"{metric}{unit}: interquartile mean of every run of the tasks (cells) both sides have, and the "
        f"probability that a run of the compared side beats a run of the base in the same task, averaged "
        f"over tasks (ties count half); [{100 * level:g}% stratified bootstrap percentile interval, "
        f"{stats.RESAMPLES} resamples, each task's runs resampled on their own]; bold: excludes 0.5"
    )
    if kind == "latex":
        bold = pd.DataFrame("", index=shown.index, columns=shown.columns)
        bold.loc[marked, "P(compared > base)"] = "textbf: --rwrap;"
        styler = shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
        latex = styler.apply(lambda _: bold, axis=None).to_latex(hrules=True, column_format="llcc" + "c" * 3)
        return latex.rstrip("\n") + f"\n% {footer}"
    lines = ["| " + " | ".join(shown.columns) + " |", "| --- " * len(shown.columns) + "|"]
    for (_, row), bold_row in zip(shown.iterrows(), marked):
        cells = [str(v) for v in row]
        cells[-1] = f"**{cells[-1]}**" if bold_row else cells[-1]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + footer


def profiles(frame: pd.DataFrame, metric: str, comparison: Comparison, level: float | None = None) -> dict:
    """Name -> (taus, fraction of runs above tau averaged over tasks, band low, band high), for each
    compared value over the tasks it shares with the base, and the base over all those tasks."""
    level = level or stats.LEVEL
    sets = [(value, mine, theirs) for value, _, mine, theirs in _tasks(frame, metric, comparison, []) if mine]
    if not sets:
        raise ConfigError(f"no task has runs of both sides of the comparison ({comparison.title})")
    base = {task: scores for _, _, theirs in sets for task, scores in theirs.items()}
    taus = stats.profile_taus([*base.values(), *(s for _, mine, _ in sets for s in mine.values())])
    curves = {
        comparison.name(value): (taus, *stats.profile_estimate(list(mine.values()), taus, level))
        for value, mine, _ in sets
    }
    curves[comparison.base_name] = (taus, *stats.profile_estimate(list(base.values()), taus, level))
    return curves


# ----------------------------------------------------------------------------- what `gpsbench table` adds
@dataclass(frozen=True)
class Extras:
    """The sections `gpsbench table` prints under its table: the paired differences of `comparison`
    (None: none), the aggregates (`aggregate`: the axes kept apart, [] for one over every cell; None:
    none), the seeds needed to detect `detect` (as shown: points for an accuracy; None: none)."""

    comparison: Comparison | None = None
    aggregate: list[str] | None = None
    detect: float | None = None
    level: float | None = None

    def __post_init__(self) -> None:
        check_level(self.level)
        if self.detect is not None and not self.detect > 0:
            raise ConfigError(f"--detect takes a difference > 0 (points for an accuracy), got {self.detect:g}")

    def sections(self, frame: pd.DataFrame, counts: dict, table: Table, kind: str, rows, cols) -> list[str]:
        """The sections in format `kind` (markdown, latex, csv)."""
        from benchmark.results import FORMATTERS

        formatter = FORMATTERS[kind]
        score = check_metric(frame, table.metric)
        found = []
        differences = None
        if self.comparison is not None:
            differences = difference_table(frame, counts, table.metric, self.comparison, rows, cols, self.level)
            found.append(formatter(differences))
        if self.aggregate is not None:
            comparison = self.comparison or Comparison()
            found.append(
                aggregate_text(
                    aggregates(frame, table.metric, comparison, self.aggregate, self.level),
                    table.metric,
                    score,
                    self.level,
                    kind,
                )
            )
        if self.detect is not None:
            difference = in_metric_units(score, self.detect)
            found.append(formatter(seeds_table(table, difference, paired=False)))
            if differences is not None:
                found.append(formatter(seeds_table(differences, difference, paired=True)))
        return found
