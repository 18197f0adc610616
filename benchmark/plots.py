"""The sweep's figures (matplotlib, Agg; PNG and PDF, written into the sweep folder), built from
`results.load`: weak vs strong DA per method for plain and GPS, the GPS gain per augmentation strength,
accuracy against each swept hyperparameter, validation-kNN learning curves and training losses (one
panel per method, seed bands), accuracy vs the prior's neighbour agreement and vs k. A plot the sweep
has no data for raises NoData with the reason; write_plots turns it into a one-line note."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark.results import AUG_ORDER, load, method_names, prior_text, variant, with_variants  # noqa: E402
from benchmark.runstate import RunState  # noqa: E402
from benchmark.scores import score  # noqa: E402

# grid axes that name what is compared, not a hyperparameter swept across it
COMPARED_AXES = ("method", "aug", "prior", "dataset", "seed")


class NoData(Exception):
    """The sweep lacks what a plot shows (the message says what)."""


def _save(fig, path: Path) -> Path:
    """`path` (PNG) and the same figure as PDF beside it."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.savefig(Path(path).with_suffix(".pdf"))
    plt.close(fig)
    return path


def spread(std, n, level: float | None):
    """An error bar: the std over seeds, or with `level` the half-width of the t interval of the mean
    (the numbers `gpsbench table --ci` prints); 0 below two seeds."""
    if level is None:
        return np.nan_to_num(np.asarray(std, dtype=float))
    from benchmark.stats import t_half_width

    return np.nan_to_num(t_half_width(std, n, level))


def _bar_name(level: float | None) -> str:
    return "std over seeds" if level is None else f"{100 * level:g}% t interval"


def _ylabel(metric: str) -> str:
    return f"{metric} (%)" if score(metric).percent else metric


def _methods(frame: pd.DataFrame) -> list[str]:
    """The methods of `frame` in the paper's order."""
    names = method_names()
    present = set(frame["method"])
    return [m for m in names if m in present] + sorted(present - set(names))


def swept(frame: pd.DataFrame) -> list[str]:
    """The grid axes other than those compared (COMPARED_AXES) with two values or more: the sweep's
    hyperparameters (lr, k, method_args.temperature, ...)."""
    axes = [c[5:] for c in frame.columns if c.startswith("axis_") and c[5:] not in COMPARED_AXES]
    return [axis for axis in axes if frame[f"axis_{axis}"].nunique() > 1]


def _label_columns(frame: pd.DataFrame, leave_out: tuple[str, ...] = ()) -> list[str]:
    """What a line's label names beside its variant: the augmentation, data set and swept axes that vary."""
    columns = [c for c in ("aug", "dataset") if c in frame and frame[c].nunique() > 1]
    return [c for c in columns + swept(frame) if c not in leave_out]


def _labelled(frame: pd.DataFrame, leave_out: tuple[str, ...] = ()) -> pd.DataFrame:
    """`frame` with a `line` column: `GPS-SimCLR (pixel), weak, lr=0.3`, sorted plain first, weak to strong."""
    frame = with_variants(frame)
    extra = _label_columns(frame, leave_out)
    frame["line"] = frame["variant"]
    for column in extra:
        values = frame[column] if column in ("aug", "dataset") else frame[f"axis_{column}"]
        frame["line"] = frame["line"] + (", " if column in ("aug", "dataset") else f", {column}=") + values.astype(str)
    order = frame["aug"].map(lambda a: AUG_ORDER.get(a, len(AUG_ORDER))) if "aug" in frame else 0
    return frame.assign(_order=order).sort_values(["gps", "variant", "_order"], kind="stable")


def bars(frame: pd.DataFrame, metric: str, out: Path, level: float | None = None) -> Path:
    """Per dataset: groups = method; bars = (plain | GPS prior) x (weak | strong); error bars = std
    (with `level`: the t interval)."""
    if frame.empty:
        raise NoData("no bar plot: no run is done")
    frame = with_variants(frame)
    datasets = list(dict.fromkeys(frame["dataset"]))
    scale = score(metric).scaled
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        data = frame[frame["dataset"] == dataset]
        stats = (
            data.groupby(["method", "prior_label", "aug"], sort=False)[metric]
            .agg(["mean", "std", "count"])
            .reset_index()
        )
        stats["bar"] = spread(stats["std"], stats["count"], level)
        names = method_names()
        methods = _methods(stats)
        series = sorted(
            dict.fromkeys(zip(stats["prior_label"], stats["aug"])),
            key=lambda pa: (pa[0] not in (None, "none"), str(pa[0]), AUG_ORDER.get(pa[1], 9)),
        )
        width = 0.8 / max(1, len(series))
        for j, (prior, aug) in enumerate(series):
            part = stats[(stats["prior_label"] == prior) & (stats["aug"] == aug)].set_index("method")
            xs = [i + j * width for i, m in enumerate(methods) if m in part.index]
            ys = [scale(part.at[m, "mean"]) for m in methods if m in part.index]
            err = [scale(part.at[m, "bar"]) for m in methods if m in part.index]
            label = ("plain" if prior in (None, "none") else f"GPS ({prior})") + f", {aug}"
            ax.bar(xs, ys, width, yerr=err, capsize=2, label=label, hatch="" if prior in (None, "none") else "//")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(methods))], [names.get(m, m) for m in methods])
        ax.set_ylabel(_ylabel(metric))
        ax.set_title(f"{dataset}: weak vs strong DA, plain vs GPS (bars: {_bar_name(level)})", fontsize=9)
        if score(metric).percent:
            ax.set_ylim(max(0, scale(stats["mean"].min()) - 10), 100)
        ax.legend(fontsize=7)
    return _save(fig, out)


def gains(frame: pd.DataFrame, metric: str, level: float | None = None) -> pd.DataFrame:
    """Per dataset, method, augmentation and GPS variant: `gain`, its mean minus plain SSL's at the same
    method and augmentation (points for an accuracy), and `error`, the standard error of that
    difference over seeds (sqrt(s_gps^2 / n_gps + s_plain^2 / n_plain)); with `level`, `gain` is the
    mean per-seed difference from the plain twin and `error` its paired t interval's half-width (the
    numbers of `gpsbench table --paired`)."""
    if level is not None:
        return _paired_gains(frame, metric, level)
    frame = with_variants(frame)
    keys = ["dataset", "method", "aug"]
    stats = frame.groupby(keys + ["gps", "variant"], sort=False)[metric].agg(["mean", "std", "count"]).reset_index()
    plain = stats.loc[~stats["gps"], keys + ["mean", "std", "count"]]
    table = stats[stats["gps"]].merge(plain, on=keys, suffixes=("", "_plain"))
    if table.empty:
        raise NoData(f"no GPS gain plot: no GPS run has a plain twin (same method and augmentation) for {metric}")
    scale = score(metric).scaled
    table["gain"] = scale(table["mean"] - table["mean_plain"])
    variance = table["std"].fillna(0) ** 2 / table["count"] + table["std_plain"].fillna(0) ** 2 / table["count_plain"]
    table["error"] = scale(np.sqrt(variance))
    return table[keys + ["variant", "gain", "error"]]


def _paired_gains(frame: pd.DataFrame, metric: str, level: float) -> pd.DataFrame:
    from benchmark.compare import Comparison, twins
    from benchmark.errors import ConfigError

    try:
        paired = twins(frame, metric, Comparison())
    except ConfigError as why:
        raise NoData(f"no GPS gain plot: {why}") from None
    if paired.empty:
        raise NoData(f"no GPS gain plot: no GPS run has a plain twin of the same seed for {metric}")
    keys = ["dataset", "method", "aug", "variant"]
    table = paired.groupby(keys, sort=False)["difference"].agg(["mean", "std", "count"]).reset_index()
    scale = score(metric).scaled
    return table.assign(gain=scale(table["mean"]), error=scale(spread(table["std"], table["count"], level)))[
        keys[:3] + ["variant", "gain", "error"]
    ]


def gps_gain(frame: pd.DataFrame, metric: str, out: Path, level: float | None = None) -> Path:
    """Per dataset, x = augmentation strength (weak to strong), one bar per GPS variant: `gains`."""
    table = gains(frame, metric, level)
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(5, 1.6 * table["aug"].nunique() + 3) * len(datasets), 4))
    for ax, dataset in zip(np.atleast_1d(axes), datasets):
        data = table[table["dataset"] == dataset]
        augs = sorted(data["aug"].unique(), key=lambda a: AUG_ORDER.get(a, len(AUG_ORDER)))
        series = list(dict.fromkeys(data.sort_values("method", key=_method_rank)["variant"]))
        width = 0.8 / len(series)
        for j, name in enumerate(series):
            part = data[data["variant"] == name].set_index("aug")
            xs = [i + (j - (len(series) - 1) / 2) * width for i, a in enumerate(augs) if a in part.index]
            here = [a for a in augs if a in part.index]
            ax.bar(xs, part.loc[here, "gain"], width, yerr=part.loc[here, "error"], capsize=2, label=name)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(augs)), augs)
        ax.set_xlabel("augmentation (weak to strong)")
        unit = "points" if score(metric).percent else metric
        ax.set_ylabel(f"GPS - plain SSL, {metric} ({unit})")
        what = "standard error" if level is None else f"paired {100 * level:g}% t interval"
        ax.set_title(f"{dataset}: GPS gain over plain SSL (bars: {what})", fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, out)


def _method_rank(values: pd.Series) -> pd.Series:
    order = {m: i for i, m in enumerate(method_names())}
    return values.map(lambda m: order.get(m, len(order)))


def hyperparameters(frame: pd.DataFrame) -> list[str]:
    """The swept axes with numeric values (lr, k, method_args.temperature, ...)."""
    return [p for p in swept(frame) if pd.to_numeric(frame[f"axis_{p}"], errors="coerce").notna().all()]


def versus(frame: pd.DataFrame, metric: str, param: str, level: float | None = None) -> pd.DataFrame:
    """Per line (variant, and the other axes that vary) and value of `param`: the metric's mean and
    std over seeds (with `level`: the t interval's half-width) (scaled: percent for an accuracy)."""
    data = _labelled(frame, leave_out=(param,))
    data[param] = pd.to_numeric(data[f"axis_{param}"])
    stats = data.groupby(["line", param], sort=False)[metric].agg(["mean", "std", "count"]).reset_index()
    scale = score(metric).scaled
    stats = stats.assign(mean=scale(stats["mean"]), std=scale(spread(stats["std"], stats["count"], level)))
    return stats.sort_values(param, kind="stable")  # lines keep their order (plain first, weak to strong)


def versus_hyperparameter(frame: pd.DataFrame, metric: str, out: Path, level: float | None = None) -> Path:
    """One panel per swept hyperparameter (a grid axis such as lr, k or method_args.temperature): the
    metric (mean, error bar = std over seeds) against its value, one line per variant; log x when the
    values span a factor of 10 or more."""
    params = hyperparameters(frame)
    if not params:
        raise NoData(f"no {metric} vs hyperparameter plot: the sweep varies no numeric axis besides the seed")
    fig, axes = plt.subplots(1, len(params), figsize=(5.5 * len(params), 4), squeeze=False)
    for ax, param in zip(axes[0], params):
        stats = versus(frame, metric, param, level)
        for line, group in stats.groupby("line", sort=False):
            ax.errorbar(group[param], group["mean"], yerr=group["std"], marker="o", capsize=2, label=line)
        values = stats[param]
        if (values > 0).all() and values.max() / values.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(param)
        ax.set_ylabel(_ylabel(metric))
        ax.set_title(f"{metric} vs {param} (bars: {_bar_name(level)})", fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, out)


def curves(epochs: pd.DataFrame, key: str, level: float | None = None) -> pd.DataFrame:
    """Per method, line (variant and the axes that vary, the seed aside) and epoch: the mean of `key`
    over seeds, its std (the band; with `level`, the t interval's half-width) and the number of seeds
    (scaled: percent for an accuracy)."""
    data = _labelled(epochs.dropna(subset=[key]))
    stats = data.groupby(["method", "line", "epoch"], sort=False)[key].agg(["mean", "std", "count"]).reset_index()
    scale = score(key).scaled
    return stats.assign(mean=scale(stats["mean"]), std=scale(spread(stats["std"], stats["count"], level)))


def _per_method(
    epochs: pd.DataFrame, key: str, ylabel: str, title: str, out: Path, sharey: bool, level: float | None = None
) -> Path:
    """One panel per method: `key` per epoch, one line per variant (mean over seeds, band = ± std or
    the t interval)."""
    stats = curves(epochs, key, level)
    methods = _methods(stats)
    names = method_names()
    fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 3.8), squeeze=False, sharey=sharey)
    for ax, method in zip(axes[0], methods):
        for line, group in stats[stats["method"] == method].groupby("line", sort=False):
            group = group.sort_values("epoch")
            x, mean, std = group["epoch"], group["mean"], group["std"]
            (drawn,) = ax.plot(x, mean, marker="." if len(group) < 20 else None, label=line)
            ax.fill_between(x, mean - std, mean + std, color=drawn.get_color(), alpha=0.2)
        ax.set_title(f"{names.get(method, method)}: {title}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6)
    for ax in axes[0] if not sharey else axes[0][:1]:
        ax.set_ylabel(ylabel)
    return _save(fig, out)


def learning_curves(epochs: pd.DataFrame, out: Path, key: str = "val_knn_acc", level: float | None = None) -> Path:
    """Validation kNN accuracy during training (metrics.jsonl every `eval_every` epochs), one panel per
    method, the seeds as a band."""
    if key not in epochs or epochs[key].isna().all():
        raise NoData(f"no learning-curve plot: metrics.jsonl holds no {key} (set eval_every in the sweep's fixed keys)")
    return _per_method(epochs, key, _ylabel(key), "validation kNN", out, sharey=True, level=level)


def losses(epochs: pd.DataFrame, out: Path, level: float | None = None) -> Path:
    """The training loss per epoch, one panel per method (losses of different methods do not share a
    scale), the seeds as a band."""
    if "loss" not in epochs or epochs["loss"].isna().all():
        raise NoData("no loss plot: no run has written metrics.jsonl yet")
    return _per_method(epochs, "loss", "training loss", "training loss", out, sharey=False, level=level)


def agreement(frame: pd.DataFrame, metric: str, out: Path) -> Path:
    """One point per (prior, dataset): GPS accuracy (mean over methods, augmentations, seeds) against
    the prior's neighbour agreement."""
    gps = frame[frame["prior_nn_agreement"].notna()] if "prior_nn_agreement" in frame else frame.iloc[:0]
    if gps.empty:
        raise NoData("no agreement plot: no GPS run reports prior_nn_agreement")
    points = gps.groupby(["prior_label", "dataset"])[[metric, "prior_nn_agreement"]].mean().reset_index()
    scale = score(metric).scaled
    fig, ax = plt.subplots(figsize=(5, 4))
    for row in points.itertuples(index=False):
        ax.scatter(row.prior_nn_agreement, scale(getattr(row, metric)))
        ax.annotate(
            f"{prior_text(row.prior_label)} {row.dataset}",
            (row.prior_nn_agreement, scale(getattr(row, metric))),
            fontsize=7,
        )
    ax.set_xlabel("prior_nn_agreement (same-label share of the k nearest)")
    ax.set_ylabel(_ylabel(metric))
    ax.set_title("GPS accuracy vs prior quality")
    return _save(fig, out)


def accuracy_vs_k(frame: pd.DataFrame, metric: str, out: Path, level: float | None = None) -> Path:
    if "k" not in frame or frame.loc[frame["k"] > 0, "k"].nunique() < 2:
        raise NoData("no accuracy vs k plot: the GPS runs share one k")
    gps = frame[frame["k"] > 0]
    scale = score(metric).scaled
    fig, ax = plt.subplots(figsize=(5, 4))
    for (method, prior, aug), group in gps.groupby(["method", "prior_label", "aug"]):
        stats = group.groupby("k")[metric].agg(["mean", "std", "count"]).reset_index()
        ax.errorbar(
            stats["k"],
            scale(stats["mean"]),
            yerr=scale(spread(stats["std"], stats["count"], level)),
            marker="o",
            capsize=2,
            label=f"{variant(method, prior)}, {aug}",
        )
    ax.set_xlabel("k (neighbours the positive is drawn from)")
    ax.set_ylabel(_ylabel(metric))
    ax.legend(fontsize=7)
    return _save(fig, out)


def performance_profile(
    frame: pd.DataFrame, metric: str, out: Path, comparison=None, level: float | None = None
) -> Path:
    """The performance profile of each side of a comparison (GPS against plain by default): the
    fraction of runs scoring above each threshold, averaged over the cells both sides have, with
    its stratified bootstrap band (benchmark/compare.py's `profiles`)."""
    from benchmark.compare import Comparison, profiles
    from benchmark.errors import ConfigError

    comparison = comparison or Comparison()
    try:
        curves = profiles(frame, metric, comparison, level)
    except ConfigError as why:
        raise NoData(f"no performance profile: {why}") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (taus, value, low, high) in curves.items():
        (drawn,) = ax.plot(taus, value, label=name)
        ax.fill_between(taus, low, high, color=drawn.get_color(), alpha=0.2)
    ax.set_xlabel(f"{_ylabel(metric)} threshold tau")
    ax.set_ylabel("fraction of runs scoring above tau")
    band = f"{100 * (level or 0.95):g}% stratified bootstrap band"
    ax.set_title(f"performance profile of {comparison.sides_title} ({band})", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out)


def write_plots(
    sweep_dir: Path, metric: str, level: float | None = None, comparison=None
) -> tuple[list[Path], list[str]]:
    """Every plot of the sweep folder (from `load`), and a one-line note for each it has no data for;
    `level`: error bars are t intervals instead of stds; `comparison`: the profile's sides."""
    sweep_dir = Path(sweep_dir)
    runs = load(sweep_dir)
    done = runs[runs["state"] == RunState.DONE]
    epochs = load(sweep_dir, metrics=True)
    plots: list[Callable[[], Path]] = [
        lambda: bars(done, metric, sweep_dir / f"bars-{metric}.png", level),
        lambda: gps_gain(done, metric, sweep_dir / f"gain-{metric}.png", level),
        lambda: versus_hyperparameter(done, metric, sweep_dir / f"hyper-{metric}.png", level),
        lambda: learning_curves(epochs, sweep_dir / "learning-curves.png", level=level),
        lambda: losses(epochs, sweep_dir / "losses.png", level),
        lambda: agreement(done, metric, sweep_dir / f"agreement-{metric}.png"),
        lambda: accuracy_vs_k(done, metric, sweep_dir / f"k-{metric}.png", level),
        lambda: performance_profile(done, metric, sweep_dir / f"profile-{metric}.png", comparison, level),
    ]
    made, notes = [], []
    for plot in plots:
        try:
            made.append(plot())
        except NoData as why:
            notes.append(str(why))
    return made, notes
