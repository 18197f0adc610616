"""The published numbers and their provenance (results/reference/paper.csv, benchmark/published.py):
each row says where it was read and what was inferred; `--compare paper` compares a published number
with the number measured the same way (the online classifier chosen on test), sets the honest readings
beside it, says under the table which protocol each column follows and prints each source, and never
shows a secondary row as the paper's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import ConfigError
from benchmark.published import COLUMNS, compare_paper, load_reference
from benchmark.results import collect

# (method, aug, prior, neighbour_view, per seed: (linear_acc, val_online_linear_acc, online_linear_acc_test_selected))
RUNS = [
    ("simclr", "weak", "none", "first", [(0.40, 0.36, 0.39), (0.42, 0.38, 0.41)]),
    ("simclr", "weak", "pixel", "first", [(0.80, 0.70, 0.78), (0.82, 0.72, 0.80)]),
    ("byol", "strong", "pixel", "first", [(0.88, 0.85, 0.90), (0.86, 0.84, 0.88)]),
    ("byol", "strong", "pixel", "second", [(0.84, 0.80, 0.86), (0.84, 0.82, 0.86)]),
]


def write_tree(root: Path, online: bool = True) -> Path:
    sweep, planned = root / "protocol", []
    for i, (method, aug, prior, view, seeds) in enumerate(RUNS):
        for seed, (probe, val, selected) in enumerate(seeds):
            run_id = f"{i:02d}{seed:010d}"
            axes = {"method": method, "aug": aug, "prior": prior, "neighbour_view": view, "seed": str(seed)}
            planned.append({"run_id": run_id, "axes": axes, "depends_on": None})
            folder = sweep / run_id
            folder.mkdir(parents=True)
            (folder / "status.json").write_text(json.dumps({"state": "done"}))
            result = {
                "run_id": run_id,
                "method": method,
                "aug": aug,
                "dataset": "cifar10",
                "prior": prior,
                "seed": seed,
                "epochs": 30,
                "k": 5 if prior != "none" else 0,
                "knn_acc": probe,
                "knn200_acc": probe,
                "linear_acc": probe,
                "val_knn_acc": probe,
                "val_linear_acc": probe,
                "prior_nn_agreement": 0.3 if prior != "none" else None,
                "train_seconds": 1.0,
                "images_per_s": 100.0,
            }
            if online:
                result.update(
                    val_online_linear_acc=val, online_linear_acc=val, online_linear_acc_test_selected=selected
                )
            (folder / "result.json").write_text(json.dumps(result))
            (folder / "config.json").write_text(json.dumps({"method": method, "neighbour_view": view}))
    axes = ["method", "aug", "prior", "neighbour_view", "seed"]
    (sweep / "sweep.json").write_text(json.dumps({"name": "protocol", "axes": axes, "runs": planned}))
    return sweep


def test_every_shipped_row_says_where_it_was_read_and_what_was_inferred():
    reference = load_reference()
    assert tuple(reference.columns) == COLUMNS
    assert set(reference["source_kind"]) <= {"paper", "secondary"}
    # only what the paper's abstract states (arXiv 2401.01990, v1 and v2): the two CIFAR-10 weak-DA numbers
    assert sorted(reference["value"]) == [37.51, 85.58]
    assert set(reference["source"]) == {"arXiv 2401.01990 v1 and v2, abstract"}
    assert set(reference["source_kind"]) == {"paper"}
    assert all(set(text.split(";")) == {"method", "metric"} for text in reference["inferred"])
    assert set(reference["metric"]) == {"online_linear_acc_test_selected"}


def test_the_comparison_uses_the_published_protocol_and_sets_the_honest_readings_beside(tmp_path):
    frame, _ = collect(write_tree(tmp_path))
    lines = compare_paper(frame, load_reference()).splitlines()
    assert lines[0] == (
        "| dataset | aug | variant | published | measured as published | difference | offline probe | online on val |"
    )
    # 37.51 against the test-selected online accuracy (40.00), the probe (41.00) and the val reading beside it
    assert "| cifar10 | weak | SimCLR | 37.51 ([1]) | 40.00 ± 1.41 | +2.49 | 41.00 ± 1.41 | 37.00 ± 1.41 |" in lines
    assert (
        "| cifar10 | weak | GPS-SimCLR (pixel) | 85.58 ([1]) | 79.00 ± 1.41 | -6.58 | 81.00 ± 1.41 | 71.00 ± 1.41 |"
        in lines
    )
    # a grid axis that varies inside a cell names its rows, which are never pooled
    byol = "| cifar10 | strong | GPS-BYOL (pixel), neighbour_view="
    assert f"{byol}first | no published number | | | 87.00 ± 1.41 | 84.50 ± 0.71 |" in lines
    assert f"{byol}second | no published number | | | 84.00 ± 0.00 | 81.00 ± 1.41 |" in lines
    text = "\n".join(lines)
    assert "- measured as published: `online_linear_acc_test_selected`: solo-learn's online linear classifier" in text
    assert "chosen on test" in text and "- offline probe: `linear_acc`:" in text and "(honest)" in text
    assert "[1] arXiv 2401.01990 v1 and v2, abstract (paper); inferred, not read there: method, metric;" in text


def test_runs_without_the_online_classifier_say_what_is_not_measured(tmp_path):
    frame, _ = collect(write_tree(tmp_path, online=False))
    lines = compare_paper(frame, load_reference()).splitlines()
    assert (
        "| cifar10 | weak | SimCLR | 37.51 ([1]) | not measured: online_linear_acc_test_selected "
        "(set online_linear: true) | | 41.00 ± 1.41 | – |" in lines
    )


def test_a_secondary_row_is_never_shown_as_the_papers(tmp_path):
    reference = tmp_path / "reference.csv"
    header = ",".join(COLUMNS)
    reference.write_text(
        f"{header}\n"
        'cifar10,weak,simclr,False,,online_linear_acc_test_selected,37.51,"arXiv 2401.01990, abstract",paper,method,\n'
        "cifar10,weak,simclr,True,,online_linear_acc_test_selected,86.00,"
        '"A Blog, 2024",secondary,method;aug,read there\n'
    )
    frame, _ = collect(write_tree(tmp_path))
    text = compare_paper(frame, load_reference(reference))
    assert "| cifar10 | weak | GPS-SimCLR (pixel) | 86.00 (secondary, [2]) | 79.00 ± 1.41 | -7.00 |" in text
    assert "[2] A Blog, 2024 (secondary); inferred, not read there: aug, method; read there" in text
    assert "[1] arXiv 2401.01990, abstract (paper); inferred, not read there: method" in text


def test_a_reference_file_without_provenance_is_refused(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("dataset,aug,method,gps,lr,metric,value,source,note\ncifar10,weak,simclr,False,,linear_acc,1,x,\n")
    with pytest.raises(ConfigError, match="missing column.*source_kind, inferred"):
        load_reference(old)
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(COLUMNS) + "\ncifar10,weak,simclr,False,,linear_acc,1,x,blog,,\n")
    with pytest.raises(ConfigError, match="source_kind 'blog'; valid: paper, secondary"):
        load_reference(bad)


def test_the_table_command_prints_the_comparison_with_its_sources(tmp_path, capsys):
    assert main(["table", str(write_tree(tmp_path)), "--compare", "paper"]) == 0
    out = capsys.readouterr().out
    assert "Beside the published numbers (paper.csv), measured as each was:" in out
    assert "Sources:\n[1] arXiv 2401.01990 v1 and v2, abstract (paper)" in out
