"""Tables from a hand-written results tree: exact cell strings (mean, std with ddof=1, n), bold
placement, missing cells, labels of `run:` and oracle rows, the prior table (the comparison with the
published numbers: tests/test_published.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.results import (
    build_table,
    collect,
    prior_table,
    to_csv,
    to_latex,
    to_markdown,
)

RUN_PRIOR = "run:method=simclr,aug=strong"
# (method, aug, prior, linear_acc per seed 0, 1, 2; None: not done)
RUNS = [
    ("simclr", "weak", "none", [0.37, 0.38, 0.36]),
    ("simclr", "weak", "pixel", [0.80, 0.82, None]),
    ("simclr", "strong", "none", [0.90, 0.91, 0.92]),
    ("simclr", "strong", "pixel", [0.89, None, None]),
    ("byol", "weak", "none", [None, None, None]),  # seed 0 failed, the others never ran
    ("byol", "weak", "pixel", [0.85, 0.86, 0.87]),
    ("byol", "strong", "none", [0.88, 0.88, 0.88]),
    ("byol", "strong", "pixel", [None, None, None]),
    ("simclr", "weak", RUN_PRIOR, [0.70, None, None]),
    ("byol", "weak", "oracle", [0.99, None, None]),
]
AGREEMENT = {"pixel": 0.25, RUN_PRIOR: 0.36, "oracle": 1.0}


def write_tree(root: Path) -> Path:
    sweep = root / "paper"
    planned = []
    for i, (method, aug, prior, accs) in enumerate(RUNS):
        for seed, acc in enumerate(accs):
            run_id = f"{i:02d}{seed:010d}"
            planned.append(
                {
                    "run_id": run_id,
                    "axes": {"method": method, "aug": aug, "prior": prior, "seed": str(seed)},
                    "depends_on": None,
                }
            )
            folder = sweep / run_id
            folder.mkdir(parents=True)
            if acc is None:
                if (method, aug, prior, seed) == ("byol", "weak", "none", 0):
                    (folder / "status.json").write_text(json.dumps({"state": "failed", "error": "boom"}))
                continue
            gps = prior != "none"
            (folder / "status.json").write_text(json.dumps({"state": "done"}))
            (folder / "result.json").write_text(
                json.dumps(
                    {
                        "run_id": run_id,
                        "method": method,
                        "aug": aug,
                        "dataset": "cifar10",
                        "prior": f"run:{'0' * 12}" if prior.startswith("run:") else prior,
                        "seed": seed,
                        "epochs": 3,
                        "k": 5 if gps else 0,
                        "knn_acc": acc - 0.01,
                        "knn200_acc": acc - 0.02,
                        "linear_acc": acc,
                        "val_knn_acc": acc,
                        "val_linear_acc": acc,
                        "prior_nn_agreement": AGREEMENT.get(prior),
                        "train_seconds": 1.0,
                        "images_per_s": 100.0,
                    }
                )
            )
            (folder / "metrics.jsonl").write_text(
                "".join(json.dumps({"epoch": e, "loss": 5.0 - e}) + "\n" for e in (1, 2, 3))
            )
    (sweep / "sweep.json").write_text(
        json.dumps({"name": "paper", "axes": ["method", "aug", "prior", "seed"], "runs": planned})
    )
    return sweep


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path)


EXPECTED_MARKDOWN = """\
| | cifar10 / weak | cifar10 / strong |
| --- | --- | --- |
| SimCLR | 37.00 ± 1.00 | **91.00 ± 1.00** |
| GPS-SimCLR (pixel) | 81.00 ± 1.41 (n=2) | 89.00 (n=1) |
| GPS-SimCLR (prior: simclr strong run) | 70.00 (n=1) | – |
| BYOL | – | 88.00 ± 0.00 |
| GPS-BYOL (oracle: uses labels) | 99.00 (n=1) | – |
| GPS-BYOL (pixel) | **86.00 ± 1.00** | – |

linear_acc, % (mean ± std over seeds; n where below 3); runs: 17 done, 1 failed, 12 missing of 30"""


def test_markdown_cells_bold_and_missing_are_exact(tree):
    frame, counts = collect(tree)
    assert counts == {"done": 17, "failed": 1, "corrupt": 0, "missing": 12, "planned": 30, "planned_seeds": 3}
    assert to_markdown(build_table(frame, counts, "linear_acc")) == EXPECTED_MARKDOWN


def test_latex_uses_booktabs_and_bold(tree):
    frame, counts = collect(tree)
    latex = to_latex(build_table(frame, counts, "linear_acc")).splitlines()
    assert latex[:5] == [
        r"\begin{tabular}{lcc}",
        r"\toprule",
        r"dataset & \multicolumn{2}{c}{cifar10} \\",  # a paper's two-level header, not 'cifar10 / weak'
        r"aug & weak & strong \\",
        r"\midrule",
    ]
    assert latex[5] == r"SimCLR & 37.00 $\pm$ 1.00 & \textbf{91.00 $\pm$ 1.00} \\"
    assert latex[8] == r"BYOL & -- & 88.00 $\pm$ 0.00 \\"
    assert latex[10] == r"GPS-BYOL (pixel) & \textbf{86.00 $\pm$ 1.00} & -- \\"
    assert latex[11:13] == [r"\bottomrule", r"\end{tabular}"]


def test_csv_holds_mean_std_and_n(tree):
    frame, counts = collect(tree)
    lines = to_csv(build_table(frame, counts, "linear_acc")).splitlines()
    assert lines[0] == "row,column,mean,std,n"
    assert lines[3].startswith("GPS-SimCLR (pixel),cifar10 / weak,0.81") and lines[3].endswith(",2.0")


def test_other_metric_rows_and_columns(tree):
    frame, counts = collect(tree)
    table = build_table(frame, counts, "knn_acc", rows=["method"], cols=["aug", "prior"])
    assert list(table.mean.index) == ["simclr", "byol"]
    assert table.cell("simclr", "weak / none") == "36.00 ± 1.00"
    with pytest.raises(Exception, match="unknown table axis 'optimizer'"):
        build_table(frame, counts, "knn_acc", rows=["optimizer"])


def test_prior_table_gives_agreement_and_gain(tree):
    frame, _ = collect(tree)
    lines = prior_table(frame, "linear_acc").splitlines()
    # pixel: simclr weak 81 - 37 = +44, simclr strong 89 - 91 = -2, byol weak has no plain run: mean +21.00 over 2
    # (no rankme, alignment, uniformity in these results: shown as missing)
    assert "| pixel | cifar10 | 0.250 | +21.00 | 2 | – | – | – |" in lines
    assert "| prior: simclr strong run | cifar10 | 0.360 | +33.00 | 1 | – | – | – |" in lines


def test_table_command_prints_and_saves_formats_and_plots(tree, capsys):
    assert main(["table", str(tree), "--save", "--compare", "paper"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(EXPECTED_MARKDOWN) and "Beside the published numbers" in out
    for name in (
        "table-linear_acc.md",
        "table-linear_acc.tex",
        "table-linear_acc.csv",
        "bars-linear_acc.png",
        "bars-linear_acc.pdf",
        "gain-linear_acc.png",
        "agreement-linear_acc.png",
        "losses.png",
        "losses.pdf",
    ):
        assert (tree / name).stat().st_size > 100, name
    # what the tree lacks is one note each, not a crash: no metric logged during training, no swept axis
    assert "gpsbench: note: no learning-curve plot: metrics.jsonl holds no val_knn_acc (set eval_every" in err
    assert not (tree / "learning-curves.png").exists() and not (tree / "hyper-linear_acc.png").exists()


def test_bad_table_requests_exit_2(tree, tmp_path, capsys):
    assert main(["table", str(tree), "--metric", "top1"]) == 2
    err = capsys.readouterr().err  # every numeric result key is a valid metric, and the message lists them
    assert "unknown metric 'top1'" in err and "valid: epochs, images_per_s, k, knn200_acc, knn_acc" in err
    assert main(["table", str(tmp_path / "nowhere")]) == 2
    assert main(["table", str(tree), "--rows", "optimizer"]) == 2
    assert "unknown table axis 'optimizer'" in capsys.readouterr().err


def test_accuracy_vs_k_plot_when_k_varies(tree, tmp_path):
    from benchmark.plots import NoData, accuracy_vs_k

    frame, _ = collect(tree)
    with pytest.raises(NoData, match="share one k"):
        accuracy_vs_k(frame, "linear_acc", tmp_path / "k.png")
    frame.loc[frame["seed"] == 1, "k"] = frame.loc[frame["seed"] == 1, "k"] * 2
    assert accuracy_vs_k(frame, "linear_acc", tmp_path / "k.png").stat().st_size > 1000


@pytest.mark.slow
def test_ten_thousand_runs_collect_and_tabulate(tmp_path, capsys):
    sweep = tmp_path / "big"
    planned = []
    for i in range(10_000):
        run_id = f"{i:012d}"
        method, aug, seed = ("simclr", "byol")[i % 2], ("weak", "strong")[(i // 2) % 2], i // 4
        planned.append({"run_id": run_id, "axes": {"method": method, "aug": aug, "seed": str(seed)}})
        (sweep / run_id).mkdir(parents=True)
        (sweep / run_id / "result.json").write_text(
            json.dumps(
                {
                    "run_id": run_id,
                    "method": method,
                    "aug": aug,
                    "dataset": "cifar10",
                    "prior": "none",
                    "seed": seed,
                    "k": 0,
                    "linear_acc": 0.5 + (i % 7) / 100,
                    "knn_acc": 0.5,
                    "knn200_acc": 0.5,
                    "prior_nn_agreement": None,
                    "epochs": 100,
                    "val_knn_acc": 0.5,
                    "val_linear_acc": 0.5,
                    "train_seconds": 60.0,
                    "images_per_s": 1e4,
                }
            )
        )
    (sweep / "sweep.json").write_text(json.dumps({"name": "big", "axes": ["method", "aug", "seed"], "runs": planned}))
    started = time.perf_counter()
    assert main(["table", str(sweep)]) == 0
    seconds = time.perf_counter() - started
    out = capsys.readouterr().out
    assert "runs: 10000 done, 0 failed, 0 missing of 10000" in out
    with capsys.disabled():
        print(f"\n10,000 runs collected and tabulated in {seconds:.2f} s")


def test_grid_axes_other_than_the_seed_split_the_rows_instead_of_being_averaged():
    import pandas as pd

    rows = [
        {
            "method": "simclr",
            "prior_label": "none",
            "dataset": "digits",
            "aug": "weak",
            "seed": seed,
            "k": 0,
            "linear_acc": accuracy,
            "axis_lr": lr,
            "axis_seed": str(seed),
        }
        for lr, accuracy in (("0.1", 0.5), ("1.0", 0.9))
        for seed in (0, 1)
    ]
    counts = {"done": 4, "failed": 0, "missing": 0, "planned": 4, "planned_seeds": 2}
    text = to_markdown(build_table(pd.DataFrame(rows), counts))
    assert "| SimCLR, lr=0.1 | 50.00 ± 0.00 |" in text and "| **SimCLR, lr=1.0** |" not in text
    assert "| SimCLR, lr=1.0 | **90.00 ± 0.00** |" in text and "rows also split by lr" in text
