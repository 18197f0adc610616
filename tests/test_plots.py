"""The plots from results.load on a hand-written sweep folder: the numbers each draws (gains, metric
vs hyperparameter, curves with seed bands), a PNG and a PDF per plot, and NoData with the reason for a
plot the sweep has no data for (write_plots: a one-line note)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.plots import (
    NoData,
    curves,
    gains,
    gps_gain,
    hyperparameters,
    learning_curves,
    losses,
    versus,
    versus_hyperparameter,
    write_plots,
)
from benchmark.results import load
from tests.test_results_frame import config_of, manifest, write_run


@pytest.fixture
def sweep(tmp_path) -> Path:
    """simclr/byol x none/pixel x weak/strong x lr 0.1/1.0 x 2 seeds (all done), with a validation
    kNN accuracy every 2 epochs; GPS is 5 points better at weak DA and 1 point worse at strong."""
    sweep, runs = tmp_path / "grid", []
    for method in ("simclr", "byol"):
        for prior in ("none", "pixel"):
            for aug in ("weak", "strong"):
                for lr in (0.1, 1.0):
                    for seed in (0, 1):
                        gps = {"weak": 0.05, "strong": -0.01}[aug] if prior == "pixel" else 0.0
                        accuracy = 0.6 + gps + lr / 10 + seed / 100
                        curve = [
                            {"epoch": e, "loss": 3 - e / 4, **({"val_knn_acc": accuracy * e / 4} if e % 2 == 0 else {})}
                            for e in (1, 2, 3, 4)
                        ]
                        run_id = f"{method}-{prior}-{aug}-{lr}-{seed}"
                        result = {"knn_acc": accuracy, "linear_acc": accuracy, "rankme": 10.0 + seed}
                        write_run(sweep, run_id, config_of(method, prior, seed, lr=lr, aug=aug), "done", result, curve)
                        axes = {"method": method, "prior": prior, "aug": aug, "lr": str(lr), "seed": str(seed)}
                        runs.append((run_id, axes))
    manifest(sweep, runs)
    return sweep


def is_figure(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")


def test_gps_gain_per_augmentation(sweep, tmp_path):
    table = gains(load(sweep), "linear_acc")
    by = {(r.method, r.aug): (r.variant, r.gain, r.error) for r in table.itertuples()}
    assert by[("simclr", "weak")][:2] == ("GPS-SimCLR (pixel)", pytest.approx(5.0))
    assert by[("byol", "strong")][:2] == ("GPS-BYOL (pixel)", pytest.approx(-1.0))
    # the seeds differ by 1 point within each lr, and lr adds 9 points: std over the 4 runs per side
    assert by[("simclr", "weak")][2] == pytest.approx((2 * 5.228129**2 / 4) ** 0.5, rel=1e-4)
    assert is_figure(gps_gain(load(sweep), "linear_acc", tmp_path / "gain.png"))


def test_metric_against_each_swept_hyperparameter(sweep, tmp_path):
    runs = load(sweep)
    assert hyperparameters(runs) == ["lr"]
    stats = versus(runs, "knn_acc", "lr")
    assert stats["line"].nunique() == 8  # 4 variants x 2 augmentations; lr on the x axis, not in the label
    simclr = stats[stats["line"] == "SimCLR, weak"]
    assert simclr["lr"].tolist() == [0.1, 1.0] and simclr["mean"].tolist() == pytest.approx([61.5, 70.5])
    assert simclr["std"].tolist() == pytest.approx([0.7071, 0.7071], rel=1e-3)  # seeds 1 point apart
    assert is_figure(versus_hyperparameter(runs, "knn_acc", tmp_path / "hyper.png"))


def test_learning_curves_are_per_method_with_seed_bands(sweep, tmp_path):
    epochs = load(sweep, metrics=True)
    stats = curves(epochs, "val_knn_acc")
    assert set(stats["method"]) == {"simclr", "byol"} and sorted(stats["epoch"].unique()) == [2, 4]
    line = stats[
        (stats["method"] == "byol") & (stats["line"] == "GPS-BYOL (pixel), strong, lr=0.1") & (stats["epoch"] == 4)
    ]
    # (0.6 - 0.01 + 0.01 + seed / 100) * 4 / 4 over seeds 0 and 1: 60.5, band 0.71
    assert line[["mean", "std", "count"]].values.tolist() == [[pytest.approx(60.5), pytest.approx(0.7071, rel=1e-3), 2]]
    assert is_figure(learning_curves(epochs, tmp_path / "curves.png"))


def test_plots_say_what_the_sweep_lacks(sweep, tmp_path):
    epochs = load(sweep, metrics=True).drop(columns=["val_knn_acc"])
    with pytest.raises(NoData, match="set eval_every"):
        learning_curves(epochs, tmp_path / "curves.png")
    plain = load(sweep)
    plain = plain[plain["prior"] == "none"]
    with pytest.raises(NoData, match="no GPS run has a plain twin"):
        gps_gain(plain, "linear_acc", tmp_path / "gain.png")
    with pytest.raises(NoData, match="varies no numeric axis"):
        versus_hyperparameter(plain[plain["lr"] == 0.1], "linear_acc", tmp_path / "hyper.png")
    assert not list(tmp_path.glob("*.png"))
    assert is_figure(losses(epochs, tmp_path / "losses.png"))


def test_write_plots_writes_every_plot_the_sweep_has_data_for(sweep):
    made, notes = write_plots(sweep, "linear_acc")
    assert sorted(p.name for p in made) == [
        "agreement-linear_acc.png",
        "bars-linear_acc.png",
        "gain-linear_acc.png",
        "hyper-linear_acc.png",
        "learning-curves.png",
        "losses.png",
        "profile-linear_acc.png",
    ]
    assert notes == ["no accuracy vs k plot: the GPS runs share one k"]
    assert all(is_figure(path) for path in made)


def test_error_bars_are_t_intervals_with_a_level(sweep):
    """With a level the plots draw the t interval's half-width of `gpsbench table --ci`, and the gain
    plot the paired interval of `--paired` (two seeds: t_{0.975, 1} = 12.706 x std / sqrt 2)."""
    runs = load(sweep)
    plain = versus(runs, "linear_acc", "lr")
    wide = versus(runs, "linear_acc", "lr", level=0.95)
    assert wide["std"].to_numpy() == pytest.approx(12.706205 * plain["std"].to_numpy() / 2**0.5, rel=1e-5)
    paired = gains(runs, "linear_acc", level=0.95)  # every seed pair differs by the same: no spread
    assert paired["gain"].tolist() == pytest.approx([5.0, -1.0] * 2) and paired["error"].abs().max() < 1e-9
