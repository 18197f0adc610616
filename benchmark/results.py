"""From a sweep folder to the paper's tables: load every run (`load`, pandas), aggregate over seeds, and
format Markdown / LaTeX / CSV with the best of each column in bold (published.py sets them beside the
paper's numbers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigError, choice_error
from benchmark.results_frame import load
from benchmark.runstate import RunState
from benchmark.scores import Score, check_metric, score

__all__ = ["load", "collect", "build_table", "to_markdown", "to_latex", "to_csv", "prior_table"]
METRICS = ("linear_acc", "knn_acc", "knn200_acc")  # the usual ones; --metric takes any numeric result key
FORMATS = ("markdown", "latex", "csv")
MISSING = "–"
AUG_ORDER = {"none": 0, "weak": 1, "crop": 2, "strong": 3}  # columns go from weak to strong, as in the paper


def method_names() -> dict[str, str]:
    """Method -> name in tables, in the paper's order, from the method files (imported here, not at
    the top, so reading results does not load torch until a table needs the names)."""
    from benchmark.methods import display_names

    return display_names()


def order_key(axis: str):
    """A sort key for the values of an axis: augmentation presets by strength, others by value."""
    if axis == "aug":
        return lambda values: values.map(lambda v: AUG_ORDER.get(v, len(AUG_ORDER)))
    if axis == "method":
        order = {m: i for i, m in enumerate(method_names())}
        return lambda values: values.map(lambda v: order.get(v, len(order)))
    return None


def collect(sweep_dir: Path, earlier: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """The done runs of `load(sweep_dir)` (a result.json with every contract key, the cell's axes from
    sweep.json), and the counts of done, failed, corrupt (a damaged file where the result should be)
    and missing runs of the plan (`earlier`: an earlier plan's done runs too, not counted)."""
    runs = load(sweep_dir, earlier=earlier)
    current = runs[runs["plan"] == "current"] if "plan" in runs else runs
    states = current["state"].value_counts() if not current.empty else pd.Series(dtype=int)
    frame = runs[runs["state"] == RunState.DONE].reset_index(drop=True)
    frame.attrs = dict(runs.attrs)
    done, failed, corrupt = (int(states.get(state, 0)) for state in (RunState.DONE, RunState.FAILED, RunState.CORRUPT))
    total = runs.attrs["planned"]
    counts = {
        "done": done,
        "failed": failed,
        "corrupt": corrupt,
        "missing": max(0, total - done - failed - corrupt),
        "planned": total,
        "planned_seeds": int(current["axis_seed"].nunique()) if "axis_seed" in current else 0,
    }
    return frame, counts


# the prior helpers import benchmark.priors (and torch) when a table is built, not when the CLI starts
def prior_text(prior: str) -> str:
    """How a prior is named in tables (its class says): `pixel`, `prior: simclr strong run`, `oracle: uses labels`."""
    from benchmark.priors import table_name

    return table_name(prior)


def variant(method: str, prior: str | None, k=None) -> str:
    """SimCLR / GPS-SimCLR (pixel) / GPS-SimCLR (prior: simclr strong run) / GPS-SimCLR (oracle: uses labels)."""
    from benchmark.priors import gives_gps

    name = method_names().get(method, method)
    if not isinstance(prior, str) or not gives_gps(prior, k):  # None or NaN: no prior
        return name
    return f"GPS-{name} ({prior_text(prior)})"


def with_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with `variant` (the row name), `gps` (whether it is a GPS run) and `uses_labels` (its prior
    chose positives with the labels) columns."""
    from benchmark.priors import prior_class

    frame = frame.copy()
    if "dataset_name" in frame:  # a custom data set (imagefolder) by its own name
        frame["dataset"] = frame["dataset_name"].fillna(frame["dataset"])
    ks = frame["k"] if "k" in frame else [None] * len(frame)
    frame["variant"] = [variant(m, p, k) for m, p, k in zip(frame["method"], frame["prior_label"], ks)]
    frame["gps"] = frame["variant"].str.startswith("GPS-")
    frame["uses_labels"] = [gps and prior_class(p).uses_labels for p, gps in zip(frame["prior_label"], frame["gps"])]
    return frame


@dataclass
class Table:
    """Aggregated cells: mean, std (ddof=1) and n over seeds, for rows x columns."""

    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    planned_seeds: int
    metric: str
    counts: dict[str, int]
    split_by: list[str] = field(default_factory=list)  # grid axes added to the rows: a cell is one setting
    upper_bounds: set = field(default_factory=set)  # rows with runs whose prior uses labels: never the best
    col_axes: list[str] = field(default_factory=list)  # the axes a column label joins (LaTeX: one header row each)
    headers: dict = field(default_factory=dict)  # column label -> its axes' values, ("cifar10", "weak")
    level: float | None = None  # a t interval of this level in place of ± std (benchmark/stats.py)

    @property
    def score(self) -> Score:
        return score(self.metric)

    def bounds(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The t interval of each cell's mean at `level` (NaN below two seeds)."""
        from benchmark.stats import LEVEL, t_half_width

        half = t_half_width(self.std, self.n, LEVEL if self.level is None else self.level)
        return self.mean - half, self.mean + half

    def cell(self, row, col) -> str:
        n = self.n.at[row, col]
        if pd.isna(n) or n == 0:
            return MISSING
        mean, std = self.score.text(self.mean.at[row, col]), self.score.text(self.std.at[row, col])
        if n < 2:
            text = mean
        elif self.level is not None:
            low, high = (bound.at[row, col] for bound in self.bounds())
            text = f"{mean} [{self.score.text(low)}, {self.score.text(high)}]"
        else:
            text = f"{mean} ± {std}"
        return text + (f" (n={int(n)})" if n < self.planned_seeds else "")

    def best(self) -> dict:
        """Per column, the rows whose mean is the best (the highest, or the lowest where lower is better;
        rounded as shown); a row whose prior uses labels (the oracle) is an upper bound and never the
        best; a metric without a direction has none."""
        if self.score.higher_is_better is None:
            return {}
        shown = self.mean.map(lambda v: float(self.score.text(v)) if pd.notna(v) else float("nan"))
        shown = shown.loc[[row for row in shown.index if row not in self.upper_bounds]]
        best = shown.max() if self.score.higher_is_better else shown.min()
        return {col: set(shown.index[shown[col] == best[col]]) for col in shown.columns if shown[col].notna().any()}

    def footer(self) -> str:
        c = self.counts
        corrupt = f", {c['corrupt']} corrupt" if c.get("corrupt") else ""
        split = (
            f"; rows also split by {', '.join(self.split_by)} (grid axes other than the seed)" if self.split_by else ""
        )
        spread = "± std" if self.level is None else f"[{100 * self.level:g}% t interval of the mean]"
        seeds = (
            f"mean {spread} over seeds; n where below {self.planned_seeds}"
            if self.planned_seeds > 1
            else "one seed per cell; no std"
        )
        direction = {True: "", False: "; lower is better", None: ""}[self.score.higher_is_better]
        return (
            f"{self.metric}{', %' if self.score.percent else ''} ({seeds}{direction}); runs: "
            f"{c['done']} done, {c['failed']} failed{corrupt}, {c['missing']} missing of {c['planned']}{split}"
        )

    def header(self, col) -> tuple:
        """A column label as its axes' values (`cifar10 / weak` -> (cifar10, weak))."""
        return self.headers.get(col, (str(col),))


def _labels(frame: pd.DataFrame, axes: list[str]) -> pd.Series:
    if axes == ["variant"]:
        return frame["variant"]
    return frame[axes].astype(str).agg(" / ".join, axis=1)


def build_table(
    frame: pd.DataFrame,
    counts: dict[str, int],
    metric: str = "linear_acc",
    rows: list[str] | None = None,
    cols: list[str] | None = None,
    level: float | None = None,
) -> Table:
    if frame.empty:
        raise ConfigError("no done runs to tabulate (see `gpsbench status`)")
    check_metric(frame, metric)
    frame = with_variants(frame)
    rows, cols = rows or ["variant"], cols or ["dataset", "aug"]
    for axis in rows + cols:
        if axis not in frame.columns:
            raise choice_error("table axis", axis, [c for c in frame.columns if not c.startswith("gps_")])
    frame["_row"], frame["_col"] = _labels(frame, rows), _labels(frame, cols)
    headers = dict(zip(frame["_col"], frame[cols].astype(str).itertuples(index=False, name=None)))
    split_by = _split_other_axes(frame)
    grouped = frame.groupby(["_row", "_col"], sort=False)[metric]
    stats = grouped.agg(["mean", "std", "count"])
    row_order = list(dict.fromkeys(_sorted(frame, _row_sort_keys(rows))["_row"]))
    col_order = list(dict.fromkeys(_sorted(frame, cols)["_col"]))
    pivot = {
        name: stats[name].unstack().reindex(index=row_order, columns=col_order) for name in ("mean", "std", "count")
    }
    seeds = frame.groupby(["_row", "_col"])["seed"].nunique().max() if "seed" in frame else 1
    planned = counts.get("planned_seeds") or int(seeds)
    return Table(
        pivot["mean"],
        pivot["std"],
        pivot["count"],
        planned,
        metric,
        counts,
        split_by,
        set(frame.loc[frame["uses_labels"], "_row"]),
        cols,
        headers,
        level,
    )


def _split_other_axes(frame: pd.DataFrame) -> list[str]:
    """Grid axes other than the seed that vary inside a cell (an lr or a k the rows and columns do not
    name) go into the row label, so that every cell aggregates over seeds only, as its footer says."""
    split = []
    columns = [c for c in frame.columns if c.startswith("axis_") and c != "axis_seed"]
    for column in columns + (["plan"] if "plan" in frame else []):  # an earlier plan's runs: rows of their own
        if frame.groupby(["_row", "_col"])[column].nunique(dropna=False).max() > 1:
            name = column.removeprefix("axis_")
            frame["_row"] = frame["_row"] + f", {name}=" + frame[column].astype(str)
            split.append(name)
    return split


def _sorted(frame: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Rows sorted axis by axis (stable), each axis by its own order."""
    for axis in reversed(axes):
        frame = frame.sort_values(axis, key=order_key(axis), kind="stable")
    return frame


def _row_sort_keys(rows: list[str]) -> list[str]:
    # the paper's order: each method, its plain row first, then its GPS rows
    return ["method", "gps", "variant"] if rows == ["variant"] else rows


def to_markdown(table: Table) -> str:
    best = table.best()
    header = "| | " + " | ".join(map(str, table.mean.columns)) + " |"
    lines = [header, "| --- " * (len(table.mean.columns) + 1) + "|"]
    for row in table.mean.index:
        cells = []
        for col in table.mean.columns:
            text = table.cell(row, col)
            cells.append(f"**{text}**" if row in best.get(col, ()) and text != MISSING else text)
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + table.footer()


def _latex_columns(table: Table, columns: list) -> pd.Index:
    """One header row per column axis (a MultiIndex: Styler spans a value over its sub-columns)."""
    headers = [table.header(col) for col in columns]
    if len(table.col_axes) > 1 and all(len(h) == len(table.col_axes) for h in headers):
        return pd.MultiIndex.from_tuples(headers, names=table.col_axes)
    return pd.Index([str(col) for col in columns], name=table.col_axes[0] if len(table.col_axes) == 1 else None)


def to_latex(table: Table) -> str:
    """booktabs LaTeX through pandas' Styler: one header row per column axis (`\\multicolumn` over
    the augmentations of a data set), row and column names escaped (`& % $ # _ { } ~ ^ \\`), the best
    of each column in `\\textbf`; the footer as a comment."""
    best = table.best()
    columns = list(table.mean.columns)
    cells = pd.DataFrame(
        [
            [table.cell(row, col).replace("±", r"$\pm$").replace(MISSING, "--") for col in columns]
            for row in table.mean.index
        ],
        index=pd.Index([str(row) for row in table.mean.index]),
        columns=_latex_columns(table, columns),
    )
    bold = pd.DataFrame(
        [
            ["textbf: --rwrap;" if row in best.get(col, ()) and table.n.at[row, col] > 0 else "" for col in columns]
            for row in table.mean.index
        ],
        index=cells.index,
        columns=cells.columns,
    )
    styler = cells.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    styler = styler.apply(lambda _: bold, axis=None)
    latex = styler.to_latex(hrules=True, multicol_align="c", column_format="l" + "c" * len(columns))
    return latex.rstrip("\n") + f"\n% {table.footer()}"


def to_csv(table: Table) -> str:
    long = pd.DataFrame(
        {
            "row": [r for r in table.mean.index for _ in table.mean.columns],
            "column": [c for _ in table.mean.index for c in table.mean.columns],
            "mean": table.mean.to_numpy().ravel(),
            "std": table.std.to_numpy().ravel(),
            "n": table.n.to_numpy().ravel(),
        }
    )
    if table.level is not None:  # the interval shown in place of the std
        low, high = table.bounds()
        long["low"], long["high"], long["level"] = low.to_numpy().ravel(), high.to_numpy().ravel(), table.level
    return long.to_csv(index=False)


FORMATTERS = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv}


# ----------------------------------------------------------------------------- prior table
QUALITY = ("rankme", "alignment", "uniformity")  # label-free scores of the learnt features (quality.py)


def prior_table(frame: pd.DataFrame, metric: str) -> str:
    """Prior x dataset: prior_nn_agreement, the gain of GPS over plain SSL at the same method and
    augmentation (mean over seeds, then over the method/augmentation pairs that have both), and the
    label-free quality of the GPS runs' features (mean; plain SSL's on its own rows to compare)."""
    chosen = check_metric(frame, metric)
    frame = with_variants(frame)
    plain = frame[~frame["gps"]].groupby(["dataset", "method", "aug"])[metric].mean()
    gps = frame[frame["gps"]]
    if gps.empty:
        raise ConfigError("no GPS runs in this sweep: the prior table compares GPS with plain SSL")
    unit = "points" if chosen.percent else metric
    quality = " | ".join(QUALITY)
    lines = [
        f"| prior | dataset | prior_nn_agreement | GPS - plain ({unit}) | pairs | {quality} |",
        "| --- " * (5 + len(QUALITY)) + "|",
    ]

    def scores(group: pd.DataFrame) -> str:
        means = [group[key].dropna().mean() if key in group else float("nan") for key in QUALITY]
        return " | ".join(MISSING if pd.isna(v) else score(key).text(v) for key, v in zip(QUALITY, means))

    for (prior, dataset), group in gps.groupby(["prior_label", "dataset"], sort=False):
        agreement = group["prior_nn_agreement"].dropna().mean()
        means = group.groupby(["method", "aug"])[metric].mean()
        gains = [
            chosen.scaled(value - plain[(dataset, m, a)]) for (m, a), value in means.items() if (dataset, m, a) in plain
        ]
        gain = f"{sum(gains) / len(gains):+.{3 if chosen.digits is None else chosen.digits}f}" if gains else MISSING
        lines.append(f"| {prior_text(prior)} | {dataset} | {agreement:.3f} | {gain} | {len(gains)} | {scores(group)} |")
    for dataset, group in frame[~frame["gps"]].groupby("dataset", sort=False):
        lines.append(f"| none (plain SSL) | {dataset} | {MISSING} | {MISSING} | {MISSING} | {scores(group)} |")
    return "\n".join(lines)


def sweep_table(sweep_dir: Path, metric: str = "linear_acc") -> str:
    """The Markdown table `make sweep` ends with (or why there is none)."""
    frame, counts = collect(sweep_dir)
    if frame.empty:
        return (
            f"no done runs yet: {counts['failed']} failed, {counts['corrupt']} corrupt, {counts['missing']} "
            f"missing of {counts['planned']}"
        )
    return to_markdown(build_table(frame, counts, metric))
