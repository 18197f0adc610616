"""results.load on a hand-written sweep folder (runs in every state, damaged files, nested config,
metrics.jsonl), and what the tables take from it: any numeric result key as the metric, with its
direction and unit; a custom data set's name; the one-seed footer; LaTeX escaping."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.results import build_table, collect, load, prior_table, to_latex, to_markdown

BASE_RESULT = {
    "dataset": "digits",
    "epochs": 4,
    "knn200_acc": 0.5,
    "val_linear_acc": 0.5,
    "val_knn_acc": 0.5,
    "train_seconds": 1.0,
    "images_per_s": 100.0,
}


def write_run(sweep: Path, run_id: str, config: dict, state: str, result: dict | None = None, epochs=()) -> Path:
    """One run folder as a sweep leaves it: config.json, status.json, metrics.jsonl, result.json."""
    folder = sweep / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    status = {"state": state, "attempt": 1, "error": "RuntimeError: boom\nTraceback ..." if state == "failed" else None}
    (folder / "status.json").write_text(json.dumps(status))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in epochs))
    if result is not None:
        keys = {k: config[k] for k in ("method", "aug", "prior", "seed", "k")}
        prior_nn = 0.9 if config["prior"] != "none" else None
        full = {**BASE_RESULT, **keys, "run_id": run_id, "prior_nn_agreement": prior_nn, **result}
        (folder / "result.json").write_text(json.dumps(full))
    return folder


def config_of(method: str, prior: str, seed: int, lr: float = 0.3, aug: str = "weak", **extra) -> dict:
    return {
        "method": method,
        "aug": aug,
        "prior": prior,
        "seed": seed,
        "k": 5 if prior != "none" else 0,
        "lr": lr,
        "dataset": "digits",
        "data_path": None,
        "method_args": {"temperature": 0.2, "proj": {"dim": 64}},
        "aug_args": {},
        **extra,
    }


def manifest(sweep: Path, runs: list[tuple[str, dict]]) -> None:
    axes = list(runs[0][1])
    planned = [{"run_id": run_id, "axes": axes_, "depends_on": None} for run_id, axes_ in runs]
    (sweep / "sweep.json").write_text(json.dumps({"name": sweep.name, "axes": axes, "runs": planned}))


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Six planned runs: two done, one failed, one running (3 epochs logged, the last line torn), one
    whose result.json is truncated, one never started (no folder)."""
    sweep = tmp_path / "mixed"
    curve = [{"epoch": e, "loss": 4.0 - e, "val_knn_acc": 0.1 * e} for e in (1, 2, 3, 4)]
    write_run(
        sweep, "done0", config_of("simclr", "none", 0), "done", {"knn_acc": 0.6, "linear_acc": 0.7, "rankme": 30.0}
    ).joinpath("metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))
    write_run(
        sweep, "done1", config_of("simclr", "pixel", 0), "done", {"knn_acc": 0.8, "linear_acc": 0.9, "rankme": 20.0}
    )
    write_run(sweep, "failed", config_of("byol", "none", 0), "failed")
    running = write_run(sweep, "running", config_of("byol", "pixel", 0), "running", epochs=curve[:2])
    with open(running / "metrics.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "lo')  # a write cut by a kill
    broken = write_run(sweep, "broken", config_of("simclr", "none", 1), "done", {"knn_acc": 0.5, "linear_acc": 0.5})
    (broken / "result.json").write_text((broken / "result.json").read_text()[:40])
    cells = [("simclr", "none", "0"), ("simclr", "pixel", "0"), ("byol", "none", "0"), ("byol", "pixel", "0")]
    cells += [("simclr", "none", "1"), ("byol", "pixel", "1")]
    ids = ["done0", "done1", "failed", "running", "broken", "pending"]
    manifest(sweep, [(i, {"method": m, "prior": p, "seed": s}) for i, (m, p, s) in zip(ids, cells)])
    return sweep


def test_load_gives_one_row_per_run_in_every_state(sweep):
    frame = load(sweep)
    states = dict(zip(frame["run_id"], frame["state"]))
    assert states == {
        "done0": "done",
        "done1": "done",
        "failed": "failed",
        "running": "running",
        "broken": "corrupt",
        "pending": "pending",
    }
    row = frame.set_index("run_id")
    # resolved config (nested blocks flattened, empty ones give no column) beside every result key
    assert row.at["done0", "method_args.temperature"] == 0.2 and row.at["done0", "method_args.proj.dim"] == 64
    assert "aug_args" not in frame and row.at["failed", "lr"] == 0.3
    assert row.at["done1", "rankme"] == 20.0 and pd.isna(row.at["failed", "knn_acc"])
    # a run never started has its axes, typed, and nothing else
    assert (row.at["pending", "method"], row.at["pending", "seed"]) == ("byol", 1) and pd.isna(row.at["pending", "lr"])
    # damage and failure are reported in columns, not raised
    assert row.at["broken", "problem"].startswith("result.json: not valid JSON")
    assert row.at["failed", "error"] == "RuntimeError: boom"
    assert frame.attrs["planned"] == 6 and "rankme" in frame.attrs["result_keys"]
    # a groupby a user writes
    assert frame.groupby("prior")["knn_acc"].mean().to_dict() == {"none": 0.6, "pixel": 0.8}


def test_load_without_config_keeps_results_and_axes_only(sweep):
    frame = load(sweep, config=False)
    assert "lr" not in frame and "method_args.temperature" not in frame
    assert {"run_id", "state", "knn_acc", "axis_prior", "prior_label"} <= set(frame.columns)


def test_load_metrics_gives_one_row_per_run_and_epoch(sweep):
    epochs = load(sweep, metrics=True)
    assert sorted(epochs.groupby("run_id")["epoch"].max().items()) == [
        ("done0", 4),
        ("running", 2),
    ]  # torn line dropped
    first = epochs[(epochs["run_id"] == "done0") & (epochs["epoch"] == 2)].iloc[0]
    assert (first["method"], first["prior_label"], first["state"]) == ("simclr", "none", "done")
    assert first["val_knn_acc"] == pytest.approx(0.2) and first["axis_seed"] == "0"


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="no sweep folder"):
        load(tmp_path / "nowhere")


def test_collect_counts_from_load(sweep):
    frame, counts = collect(sweep)
    assert sorted(frame["run_id"]) == ["done0", "done1"]
    assert counts == {"done": 2, "failed": 1, "corrupt": 1, "missing": 2, "planned": 6, "planned_seeds": 2}


def quality_sweep(root: Path) -> Path:
    """simclr/byol x none/pixel x 2 seeds, done, with label-free scores that put a different row best
    by each direction."""
    sweep, runs = root / "quality", []
    values = {  # (method, prior): (linear_acc, rankme, uniformity)
        ("simclr", "none"): (0.90, 12.0, -3.0),
        ("simclr", "pixel"): (0.95, 40.0, -1.5),
        ("byol", "none"): (0.80, 25.0, -3.5),
        ("byol", "pixel"): (0.85, 30.0, -2.0),
    }
    for i, ((method, prior), (acc, rankme, uniformity)) in enumerate(values.items()):
        for seed in (0, 1):
            run_id = f"q{i}{seed}"
            result = {
                "knn_acc": acc,
                "linear_acc": acc + seed / 100,
                "val_knn_acc": acc,
                "rankme": rankme + seed,
                "alignment": 0.5,
                "uniformity": uniformity,
            }
            write_run(sweep, run_id, config_of(method, prior, seed), "done", result)
            runs.append((run_id, {"method": method, "prior": prior, "seed": str(seed)}))
    manifest(sweep, runs)
    return sweep


def test_any_numeric_result_key_is_a_metric_with_its_unit_and_direction(tmp_path, capsys):
    sweep = quality_sweep(tmp_path)
    assert main(["table", str(sweep), "--metric", "rankme"]) == 0
    text = capsys.readouterr().out
    assert "| SimCLR | 12.50 ± 0.71 |" in text  # not a percentage
    assert "| GPS-SimCLR (pixel) | **40.50 ± 0.71** |" in text  # higher is better
    assert "rankme (mean ± std over seeds; n where below 2); runs: 8 done" in text
    frame, counts = collect(sweep)
    uniformity = to_markdown(build_table(frame, counts, "uniformity"))
    assert "| BYOL | **-3.500 ± 0.000** |" in uniformity  # lower is better
    assert "uniformity (mean ± std over seeds; n where below 2; lower is better)" in uniformity
    accuracy = to_markdown(build_table(frame, counts, "val_knn_acc"))
    assert "| GPS-SimCLR (pixel) | **95.00 ± 0.00** |" in accuracy and "val_knn_acc, %" in accuracy


def test_an_unknown_metric_lists_the_numeric_result_keys(tmp_path, capsys):
    sweep = quality_sweep(tmp_path)
    assert main(["table", str(sweep), "--metric", "rank_me"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpsbench: error: unknown metric 'rank_me' (did you mean 'rankme'?); valid: alignment,")
    assert "uniformity" in err and "val_knn_acc" in err and "seed" not in err.split("valid:")[1]


def test_the_prior_table_adds_the_label_free_scores(tmp_path):
    frame, _ = collect(quality_sweep(tmp_path))
    lines = prior_table(frame, "rankme").splitlines()
    assert lines[0] == (
        "| prior | dataset | prior_nn_agreement | GPS - plain (rankme) | pairs | rankme | alignment | uniformity |"
    )
    # GPS - plain: simclr 40.5 - 12.5 = 28, byol 30.5 - 25.5 = 5: mean +16.50 over 2 pairs
    assert "| pixel | digits | 0.900 | +16.50 | 2 | 35.50 | 0.500 | -1.750 |" in lines
    assert "| none (plain SSL) | digits | – | – | – | 19.00 | 0.500 | -3.250 |" in lines


def test_a_custom_data_set_is_named_by_its_path_not_imagefolder(tmp_path):
    sweep, runs = tmp_path / "custom", []
    for seed in (0, 1):
        config = config_of("simclr", "none", seed, dataset="imagefolder", data_path="/data/R-HID.tar.gz")
        write_run(sweep, f"c{seed}", config, "done", {"knn_acc": 0.5, "linear_acc": 0.5, "dataset": "imagefolder"})
        runs.append((f"c{seed}", {"seed": str(seed)}))
    manifest(sweep, runs)
    frame, counts = collect(sweep)
    text = to_markdown(build_table(frame, counts))
    assert text.startswith("| | R-HID / weak |") and "imagefolder" not in text


def test_a_one_seed_table_says_so_in_its_footer(tmp_path):
    sweep = tmp_path / "one"
    write_run(sweep, "a", config_of("simclr", "none", 0), "done", {"knn_acc": 0.5, "linear_acc": 0.5})
    write_run(sweep, "b", config_of("byol", "none", 0), "done", {"knn_acc": 0.5, "linear_acc": 0.6})
    manifest(sweep, [("a", {"method": "simclr", "seed": "0"}), ("b", {"method": "byol", "seed": "0"})])
    frame, counts = collect(sweep)
    text = to_markdown(build_table(frame, counts))
    assert text.endswith("linear_acc, % (one seed per cell; no std); runs: 2 done, 0 failed, 0 missing of 2")
    assert "| BYOL | **60.00** |" in text


def test_latex_escapes_special_characters_in_names(tmp_path):
    rows = [
        {
            "method": "simclr",
            "prior_label": "none",
            "dataset": "my$set{1}",
            "aug": "~^\\",
            "seed": seed,
            "k": 0,
            "linear_acc": 0.5 + seed / 10,
            "axis_seed": str(seed),
        }
        for seed in (0, 1)
    ]
    counts = {"done": 2, "failed": 0, "missing": 0, "planned": 2, "planned_seeds": 2}
    latex = to_latex(build_table(pd.DataFrame(rows), counts, rows=["dataset"], cols=["aug", "method"])).splitlines()
    assert latex[2] == r"aug & \textasciitilde \textasciicircum \textbackslash  \\"
    assert latex[5] == r"my\$set\{1\} & \textbf{55.00 $\pm$ 7.07} \\"
    one_axis = to_latex(build_table(pd.DataFrame(rows), counts, rows=["method"], cols=["aug"])).splitlines()
    assert one_axis[2] == r"aug & \textasciitilde \textasciicircum \textbackslash  \\"  # one header row
