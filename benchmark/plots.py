"""The sweep's figures (matplotlib, PNG, written into the sweep folder): weak vs strong DA per method
for plain and GPS, accuracy vs the prior's neighbour agreement, accuracy vs k, training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark.results import AUG_ORDER, method_names, prior_text, variant  # noqa: E402
from benchmark.rundir import RunDir  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def bars(frame: pd.DataFrame, metric: str, out: Path) -> Path:
    """Per dataset: groups = method; bars = (plain | GPS prior) x (weak | strong); error bars = std."""
    datasets = list(dict.fromkeys(frame["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        data = frame[frame["dataset"] == dataset]
        stats = data.groupby(["method", "prior_label", "aug"], sort=False)[metric].agg(["mean", "std"]).reset_index()
        names = method_names()
        methods = [m for m in names if m in set(stats["method"])] + [
            m for m in dict.fromkeys(stats["method"]) if m not in names
        ]
        series = sorted(
            dict.fromkeys(zip(stats["prior_label"], stats["aug"])),
            key=lambda pa: (pa[0] not in (None, "none"), str(pa[0]), AUG_ORDER.get(pa[1], 9)),
        )
        width = 0.8 / max(1, len(series))
        for j, (prior, aug) in enumerate(series):
            part = stats[(stats["prior_label"] == prior) & (stats["aug"] == aug)].set_index("method")
            xs = [i + j * width for i, m in enumerate(methods) if m in part.index]
            ys = [100 * part.at[m, "mean"] for m in methods if m in part.index]
            err = [100 * (part.at[m, "std"] if pd.notna(part.at[m, "std"]) else 0) for m in methods if m in part.index]
            label = ("plain" if prior in (None, "none") else f"GPS ({prior})") + f", {aug}"
            ax.bar(xs, ys, width, yerr=err, capsize=2, label=label, hatch="" if prior in (None, "none") else "//")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(methods))], [names.get(m, m) for m in methods])
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{dataset}: weak vs strong DA, plain vs GPS")
        low = 100 * stats["mean"].min()
        ax.set_ylim(max(0, low - 10), 100)
        ax.legend(fontsize=7)
    return _save(fig, out)


def agreement(frame: pd.DataFrame, metric: str, out: Path) -> Path | None:
    """One point per (prior, dataset): GPS accuracy (mean over methods, augmentations, seeds) against
    the prior's neighbour agreement."""
    gps = frame[frame["prior_nn_agreement"].notna()]
    if gps.empty:
        return None
    points = gps.groupby(["prior_label", "dataset"])[[metric, "prior_nn_agreement"]].mean().reset_index()
    fig, ax = plt.subplots(figsize=(5, 4))
    for row in points.itertuples(index=False):
        ax.scatter(row.prior_nn_agreement, 100 * getattr(row, metric))
        ax.annotate(
            f"{prior_text(row.prior_label)} {row.dataset}",
            (row.prior_nn_agreement, 100 * getattr(row, metric)),
            fontsize=7,
        )
    ax.set_xlabel("prior_nn_agreement (same-label share of the k nearest)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title("GPS accuracy vs prior quality")
    return _save(fig, out)


def accuracy_vs_k(frame: pd.DataFrame, metric: str, out: Path) -> Path | None:
    if "k" not in frame or frame.loc[frame["k"] > 0, "k"].nunique() < 2:
        return None
    gps = frame[frame["k"] > 0]
    fig, ax = plt.subplots(figsize=(5, 4))
    for (method, prior, aug), group in gps.groupby(["method", "prior_label", "aug"]):
        stats = group.groupby("k")[metric].agg(["mean", "std"]).reset_index()
        ax.errorbar(
            stats["k"],
            100 * stats["mean"],
            yerr=100 * stats["std"].fillna(0),
            marker="o",
            capsize=2,
            label=f"{variant(method, prior)}, {aug}",
        )
    ax.set_xlabel("k (neighbours the positive is drawn from)")
    ax.set_ylabel(f"{metric} (%)")
    ax.legend(fontsize=7)
    return _save(fig, out)


def curves(sweep_dir: Path, frame: pd.DataFrame, out: Path) -> Path | None:
    """Training loss per epoch from metrics.jsonl, one line per cell (mean over seeds)."""
    rows = []
    for run in frame.itertuples(index=False):
        label = f"{variant(run.method, run.prior_label)}, {run.aug}, {run.dataset}"
        rows += [{"label": label, **metrics} for metrics in RunDir(Path(sweep_dir) / run.run_id).read_metrics()]
    if not rows:
        return None
    data = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, group in data.groupby("label", sort=False):
        mean = group.groupby("epoch")["loss"].mean()
        ax.plot(mean.index, mean.to_numpy(), label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=6)
    return _save(fig, out)


def write_plots(sweep_dir: Path, frame: pd.DataFrame, metric: str) -> list[Path]:
    sweep_dir = Path(sweep_dir)
    made = [
        bars(frame, metric, sweep_dir / f"bars-{metric}.png"),
        agreement(frame, metric, sweep_dir / f"agreement-{metric}.png"),
        accuracy_vs_k(frame, metric, sweep_dir / f"k-{metric}.png"),
        curves(sweep_dir, frame, sweep_dir / "curves.png"),
    ]
    return [path for path in made if path is not None]
