"""Paired comparisons on a hand-written sweep folder whose per-seed differences are chosen: the
difference table's cells worked out by hand (mean, paired t interval, bold where it excludes zero),
twins found by seed and by every other axis, `--compare-axis`, the t intervals in place of ± std in
Markdown, LaTeX and CSV, the seeds needed, the aggregates against the statistics computed apart, and
the command's flags with their errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmark import stats
from benchmark.cli import main
from benchmark.compare import Comparison, aggregates, difference_table, seeds_table, twins
from benchmark.errors import ConfigError
from benchmark.results import build_table, collect, to_csv, to_latex, to_markdown
from tests.test_results_frame import config_of, manifest, write_run

T_975_DF2 = 4.302652729749464  # printed t tables: 4.303
# (method, aug) -> linear accuracy in % per seed 0, 1, 2: plain, then GPS (None: not done)
CELLS = {
    ("simclr", "weak"): ([90.0, 91.0, 92.0], [92.0, 94.0, 93.0]),  # differences 2, 3, 1: wide
    ("simclr", "strong"): ([95.0, 95.5, 96.0], [97.0, 97.6, 97.9]),  # 2.0, 2.1, 1.9: excludes zero
    ("byol", "weak"): ([80.0, 82.0, 84.0], [79.0, 81.0, 83.0]),  # -1, -1, -1: no spread
    ("byol", "strong"): ([88.0, 89.0, 90.0], [89.0, 89.5, None]),  # two pairs
}


@pytest.fixture
def sweep(tmp_path) -> Path:
    folder, runs = tmp_path / "paired", []
    for (method, aug), sides in CELLS.items():
        for prior, accuracies in zip(("none", "pixel"), sides):
            for seed, accuracy in enumerate(accuracies):
                run_id = f"{method}-{aug}-{prior}-{seed}"
                axes = {"method": method, "aug": aug, "prior": prior, "seed": str(seed)}
                runs.append((run_id, axes))
                if accuracy is not None:
                    result = {"linear_acc": accuracy / 100, "knn_acc": accuracy / 100 - 0.01}
                    write_run(folder, run_id, config_of(method, prior, seed, aug=aug), "done", result)
    manifest(folder, runs)
    return folder


def test_twins_pair_each_gps_run_with_the_plain_run_of_its_seed(sweep):
    frame, _ = collect(sweep)
    paired = twins(frame, "linear_acc", Comparison())
    assert len(paired) == 11  # 12 GPS runs planned, one not done
    row = paired[(paired["method"] == "simclr") & (paired["aug"] == "weak") & (paired["seed"] == 1)].iloc[0]
    assert row["difference"] == pytest.approx(0.03)


def test_difference_cells_by_hand(sweep):
    frame, counts = collect(sweep)
    table = difference_table(frame, counts, "linear_acc", Comparison())
    half_wide = T_975_DF2 * 1.0 / math.sqrt(3)  # differences 2, 3, 1: std 1
    half_narrow = T_975_DF2 * 0.1 / math.sqrt(3)  # 2.0, 2.1, 1.9: std 0.1
    row, weak, strong = "GPS-SimCLR (pixel)", "digits / weak", "digits / strong"
    assert table.cell(row, weak) == f"+2.00 [{2 - half_wide:+.2f}, +{2 + half_wide:.2f}]"
    assert table.cell(row, strong) == f"+2.00 [+{2 - half_narrow:.2f}, +{2 + half_narrow:.2f}]"
    assert table.cell("GPS-BYOL (pixel)", weak) == "-1.00 [-1.00, -1.00]"
    two = [0.01, 0.005]  # byol strong: 89 - 88, 89.5 - 89
    half_two = stats.t_half_width(0.5 * math.sqrt(2) / 2 / 100 * 100, 2) / 100  # std of (1, 0.5) = 0.3536 points
    low, high = 0.75 - 100 * half_two, 0.75 + 100 * half_two
    assert sum(two) / 2 == pytest.approx(0.0075)
    assert table.cell("GPS-BYOL (pixel)", strong) == f"+0.75 [{low:+.2f}, {high:+.2f}] (n=2)"
    markdown = to_markdown(table)
    assert "**+2.00 [+1.75, +2.25]**" in markdown and "**-1.00 [-1.00, -1.00]**" in markdown
    assert f"**+2.00 [{2 - half_wide:+.2f}" not in markdown  # the wide one is not marked
    assert "paired by seed" in markdown and "bold: the interval excludes zero" in markdown
    assert "\\textbf{+2.00 [+1.75, +2.25]}" in to_latex(table)


def test_compare_axis_prior_none_gives_the_same_differences(sweep):
    frame, counts = collect(sweep)
    by_gps = difference_table(frame, counts, "linear_acc", Comparison())
    by_axis = difference_table(frame, counts, "linear_acc", Comparison.parse("prior=none"))
    assert to_csv(by_gps) == to_csv(by_axis)
    by_aug = difference_table(frame, counts, "linear_acc", Comparison.parse("aug=weak"))
    half = T_975_DF2 * 0.5 / math.sqrt(3)  # strong - weak: 5, 4.5, 4: std 0.5
    assert by_aug.cell("SimCLR", "digits / strong") == f"+4.50 [+{4.5 - half:.2f}, +{4.5 + half:.2f}]"


@pytest.mark.parametrize(
    "text, message",
    [
        ("optimizer=lars", "unknown --compare-axis axis 'optimizer'"),
        ("prior=imagenet", "unknown --compare-axis base value of prior 'imagenet'"),
        ("prior", "--compare-axis takes AXIS=BASE"),
    ],
)
def test_a_bad_comparison_names_the_valid_choices(sweep, text, message):
    frame, counts = collect(sweep)
    with pytest.raises(ConfigError) as err:
        difference_table(frame, counts, "linear_acc", Comparison.parse(text))
    assert message in str(err.value)
    if "axis 'optimizer'" in message:
        assert "method" in str(err.value) and "seed" in str(err.value)


def test_intervals_in_place_of_std_in_every_format(sweep):
    frame, counts = collect(sweep)
    table = build_table(frame, counts, "linear_acc", level=0.95)
    half = T_975_DF2 * 1.0 / math.sqrt(3)  # SimCLR weak: 90, 91, 92
    assert table.cell("SimCLR", "digits / weak") == f"91.00 [{91 - half:.2f}, {91 + half:.2f}]"
    assert "mean [95% t interval of the mean] over seeds" in to_markdown(table)
    assert f"91.00 [{91 - half:.2f}, {91 + half:.2f}]" in to_latex(table)
    csv = to_csv(table).splitlines()
    assert csv[0] == "row,column,mean,std,n,low,high,level"
    assert csv[1].startswith("SimCLR,digits / weak,0.91,0.01") and csv[1].endswith(",0.95")
    assert to_csv(build_table(frame, counts, "linear_acc")).splitlines()[0] == "row,column,mean,std,n"


def test_seeds_needed_from_the_paired_std(sweep):
    frame, counts = collect(sweep)
    table = difference_table(frame, counts, "linear_acc", Comparison())
    seeds = seeds_table(table, difference=0.01, paired=True)  # 1 point
    assert seeds.cell("GPS-SimCLR (pixel)", "digits / weak") == "10"  # std 1 point: d = 1 (published: 10)
    assert seeds.cell("GPS-SimCLR (pixel)", "digits / strong") == "3"  # std 0.1 point: power 0.73 at 2
    cells = seeds_table(build_table(frame, counts, "linear_acc"), difference=0.01, paired=False)
    assert cells.cell("SimCLR", "digits / weak") == "17"  # std 1 point, two groups (published: 17)
    assert "power 0.8" in to_markdown(seeds)


def test_aggregates_equal_the_statistics_of_the_task_scores(sweep):
    frame, _ = collect(sweep)
    (found,) = aggregates(frame, "linear_acc", Comparison())
    gps = [CELLS[c][1] for c in CELLS]
    plain = [CELLS[c][0] for c in CELLS]
    gps = [[v for v in task if v is not None] for task in gps]
    assert found.name == "GPS (pixel)" and found.base_name == "plain SSL"
    assert (found.tasks, found.runs, found.base_runs) == (4, 11, 12)
    assert found.iqm.value == pytest.approx(stats.iqm(gps))
    assert found.base_iqm.value == pytest.approx(stats.iqm(plain))
    assert found.improvement.value == pytest.approx(stats.probability_of_improvement(gps, plain))
    assert found.iqm.low <= found.iqm.value <= found.iqm.high
    per_aug = aggregates(frame, "linear_acc", Comparison(), by=["aug"])
    assert [(a.group, a.tasks) for a in per_aug] == [("aug=weak", 2), ("aug=strong", 2)]


def test_a_collapsed_plain_run_is_the_twin_of_every_k(tmp_path):
    """prior none x k 5, 10 collapse into one plain run (its axes say k 5): GPS at k 10 pairs with it."""
    folder, runs = tmp_path / "ks", []
    for seed in (0, 1):
        plain = {"linear_acc": 0.9 + seed / 100, "knn_acc": 0.9}
        write_run(folder, f"plain-{seed}", config_of("simclr", "none", seed), "done", plain)
        runs.append((f"plain-{seed}", {"prior": "none", "k": "5", "seed": str(seed)}))
        for k in (5, 10):
            config = {**config_of("simclr", "pixel", seed), "k": k}
            result = {"linear_acc": 0.9 + k / 1000 + seed / 100, "knn_acc": 0.9, "k": k}
            write_run(folder, f"gps-{k}-{seed}", config, "done", result)
            runs.append((f"gps-{k}-{seed}", {"prior": "pixel", "k": str(k), "seed": str(seed)}))
    manifest(folder, runs)
    frame, counts = collect(folder)
    paired = twins(frame, "linear_acc", Comparison())
    assert sorted(paired["difference"].round(4)) == [0.005, 0.005, 0.01, 0.01]


def test_table_command_adds_paired_aggregate_and_seeds_sections(sweep, capsys):
    assert main(["table", str(sweep), "--paired", "--aggregate", "--detect", "1", "--ci", "--save"]) == 0
    out = capsys.readouterr().out
    assert "91.00 [" in out and "**+2.00 [+1.75, +2.25]**" in out
    assert "| GPS (pixel) vs plain SSL | all | 4 | 11 (12) |" in out
    assert "seeds needed to detect a difference of 1 point in" in out
    assert (sweep / "profile-linear_acc.png").stat().st_size > 1000
    assert main(["table", str(sweep), "--compare-axis", "aug=weak", "--format", "csv", "--aggregate"]) == 0
    out = capsys.readouterr().out
    assert "low,high,level" in out and "compared,base,over,tasks,runs,base_runs,iqm,iqm_low,iqm_high" in out
    assert main(["table", str(sweep), "--paired", "--format", "latex", "--aggregate"]) == 0
    out = capsys.readouterr().out
    assert "P(compared > base)" in out and "\\bottomrule" in out and "| ---" not in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ci", "95"], "--ci takes a confidence level between 0 and 1"),
        (["--detect", "0"], "--detect takes a difference > 0"),
        (["--compare-axis", "temperature=0.1"], "unknown --compare-axis axis 'temperature'"),
        (["--aggregate", "optimizer"], "unknown --aggregate axis 'optimizer'"),
    ],
)
def test_bad_flags_exit_2_with_one_line(sweep, capsys, flags, message):
    assert main(["table", str(sweep), *flags]) == 2
    assert message in capsys.readouterr().err
