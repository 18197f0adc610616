"""The perf fixtures measure what they claim: the registry grid is the paper's, every run is read. And
`gpsbench perf`'s options beyond the figures: each phase reported as soon as it is measured (a perf
stopped in a later phase keeps the earlier ones), and the bf16-vs-fp32 check of the first steps."""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmark.cli import build_parser, main
from benchmark.config import RunConfig
from benchmark.data import load_run_data
from benchmark.perf import PerfSizes, run_perf
from benchmark.perf.bookkeeping import registry_seconds, sweep_file, write_finished_runs
from benchmark.perf.phases import PhaseFile
from benchmark.perf.precision import first_losses, precision_check
from benchmark.perf.step import StepMeasures
from benchmark.results import collect
from benchmark.sweep.launch import select
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import parse_sweep

# the report's keys before the options (perf.json's contract), and the one --precision-check adds
REPORT_KEYS = {
    "figures_images_per_s",
    "ratios",
    "pipeline_profile_shares",
    "pipeline_host_syncs",
    "knn",
    "registry",
    "setup",
    "device",
    "host",
    "cpu_count",
    "versions",
    "time",
    "phase_seconds",
    "data_pipeline_vs_dataloader_per_recipe",
}


def test_registry_grid_is_ten_thousand_cells_with_run_selectors():
    plan = expand(parse_sweep(sweep_file()))
    assert len(plan.cells) == 10_000 and plan.collapsed == 0
    dependent = [c for c in plan.cells if c.depends_on]
    assert len(dependent) == 2_500 and all(str(c.config.prior).startswith("run:") for c in dependent)


def test_finished_runs_are_read_as_done_and_collected(tmp_path):
    plan = expand(parse_sweep(sweep_file(seeds=2)))
    write_finished_runs(plan, tmp_path / "sweep")
    assert select(plan, tmp_path / "sweep", retry_failed=False).count() == {"done": 80}
    frame, counts = collect(tmp_path / "sweep")
    assert len(frame) == 80 and counts["planned"] == 80
    config = json.loads((tmp_path / "sweep" / plan.cells[0].run_id / "config.json").read_text())
    assert config["method"] == plan.cells[0].config.method
    figures = registry_seconds(seeds=2)
    assert figures["cells"] == 80 and min(figures[k] for k in ("plan_seconds", "states_seconds", "table_seconds")) > 0


def test_phase_file_holds_each_phase_as_soon_as_it_is_measured(tmp_path, capsys):
    path = tmp_path / "phases.json"
    phases = PhaseFile(path)
    phases("step", StepMeasures({"pipeline": 9.0}, {"train_images": 100}, {}, "operator table", {}), 12.5)
    found = json.loads(path.read_text())
    assert found["step"] == {
        "figures": {"pipeline": 9.0},
        "setup": {"train_images": 100},
        "profile_shares": {},
        "host_syncs": {},
    }
    assert found["phase_seconds"] == {"step": 12.5}  # the profile table has a file of its own: not here
    phases("knn", {"exact_method": "exact-faiss"}, 3.0)
    found = json.loads(path.read_text())
    assert found["knn"] == {"exact_method": "exact-faiss"} and set(found["phase_seconds"]) == {"step", "knn"}
    assert "perf: phase knn measured in 3.0 s" in capsys.readouterr().out


def test_perf_options_are_checked_before_measuring(capsys):
    args = build_parser().parse_args(["perf", "--precision-check", "5", "--phases", "p.json"])
    assert (args.precision_check, args.phases) == (5, "p.json")
    assert build_parser().parse_args(["perf"]).precision_check == 0  # off unless asked for
    assert main(["perf", "--dataset", "digits", "--out", "/nonexistent/perf.json", "--precision-check", "-1"]) == 2
    assert "--precision-check -1" in capsys.readouterr().err


def _small_config(tmp_path, **values) -> RunConfig:
    """gpsbench perf's GPS step (pixel prior, k 5) at test sizes, on the synthetic gratings."""
    base = {
        "dataset": "synthetic",
        "image_size": 16,
        "backbone": "small",
        "method": "simclr",
        "aug": "strong",
        "epochs": 1,
        "prior": "pixel",
        "k": 5,
        "prior_args": {"pca_dim": 32},
        "batch_size": 32,
        "device": "cpu",
        "data_dir": str(tmp_path / "data"),
        "method_args": {"proj_hidden_dim": 64, "proj_output_dim": 32},
    }
    return RunConfig.from_dict({**base, **values})


@pytest.mark.slow
def test_perf_reports_phases_as_they_come_and_the_precision_check(tmp_path, capsys):
    seen = []
    phase_file = PhaseFile(tmp_path / "phases.json")

    def on_phase(phase, value, seconds):
        seen.append(phase)
        phase_file(phase, value, seconds)

    sizes = PerfSizes(exact_images=200, approx_images=0, registry_seeds=1)
    out = tmp_path / "perf.json"
    report = run_perf(_small_config(tmp_path), True, 0, str(out), tmp_path, sizes, precision_steps=3, on_phase=on_phase)
    assert seen == ["step", "precision", "recipes", "knn", "registry"]
    assert set(report) == REPORT_KEYS | {"precision"} and json.loads(out.read_text()) == report
    assert set(report["phase_seconds"]) == {"data", "step", "precision", "recipes", "knn", "registry", "total"}
    precision = report["precision"]
    assert [row["step"] for row in precision["steps"]] == [1, 2, 3]
    for row in precision["steps"]:
        assert math.isfinite(row["bf16"]) and math.isfinite(row["fp32"]) and row["lr"] > 0
        assert row["bf16"] != row["fp32"]  # the autocast was in effect
    assert precision["max_rel_diff"] == max(row["rel_diff"] for row in precision["steps"])
    assert precision["agree"] == (precision["max_rel_diff"] <= precision["tolerance"])
    phases = json.loads((tmp_path / "phases.json").read_text())
    assert phases["precision"] == precision and phases["knn"] == report["knn"]
    assert "precision check (bf16 autocast vs fp32)" in capsys.readouterr().out


@pytest.mark.slow
def test_the_precision_check_compares_like_with_like(tmp_path):
    """Same seed, same anchors and draws: two fp32 passes give the same losses; steps stop at an epoch."""
    config = _small_config(tmp_path, precision="fp32", subset=160)  # 5 steps an epoch
    data, cpu = load_run_data(config), torch.device("cpu")
    first, _ = first_losses(config, data, cpu, 2)
    again, _ = first_losses(config, data, cpu, 2)
    assert first == again and len(first) == 2
    report = precision_check(config, data, cpu, steps=1000)
    assert len(report["steps"]) == len(data.pretrain) // config.batch_size  # one epoch at most
    assert report["steps"][0]["fp32"] == first[0][1]  # the check's fp32 side is the run in fp32


@pytest.mark.slow
def test_a_perf_stopped_in_a_later_phase_keeps_the_earlier_ones(tmp_path):
    phase_file = PhaseFile(tmp_path / "phases.json")

    def stop_after_step(phase, value, seconds):
        phase_file(phase, value, seconds)
        raise KeyboardInterrupt  # what Ctrl-C or a job's time limit does in the next phase

    with pytest.raises(KeyboardInterrupt):
        run_perf(_small_config(tmp_path), True, 0, str(tmp_path / "perf.json"), tmp_path, on_phase=stop_after_step)
    found = json.loads((tmp_path / "phases.json").read_text())
    assert set(found) == {"step", "phase_seconds"} and found["step"]["figures"]["pipeline"] > 0
    assert not (tmp_path / "perf.json").exists()
