"""gpu/check.py (the GPU check of issue 19) where no GPU is: its arguments and sizes, the plan of
sweeps/gpu-check.yaml, the epoch choice, the 200-epoch extrapolation, the projection that stops a sweep
falling behind, perf's phase reports, the steps' time limits, and the summary of partial outputs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from benchmark.augment import resolve_aug_params
from benchmark.backbones import resolve_backbone_name
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep

REPO = Path(__file__).resolve().parent.parent


def _load_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "gpu" / "check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


check = _load_check()


def test_arguments_pick_the_device_sizes_and_route_the_sets():
    args = check.parse_args(["--device", "cpu"])
    assert args.sizes == check.CPU_SIZES and args.sets == [] and args.steps == ["perf", "sweep", "precision"]
    args = check.parse_args(
        [
            "--set",
            "epochs=40",
            "--set",
            "method_args.temperature=0.5",
            "--batch-size",
            "256",
            "--set",
            "compile=false",
            "--steps",
            "sweep,precision",
        ]
    )
    assert (args.sizes.epochs, args.sizes.batch_size, args.sizes.compile) == (40, 256, False)
    assert (args.sizes.subset, args.sizes.backbone) == (None, "resnet18")  # the GPU's sizes otherwise
    assert args.sets == ["method_args.temperature=0.5"] and args.steps == ["sweep", "precision"]
    assert check.parse_args([]).sizes.epochs is None  # on a GPU: the most that fit
    for bad in (["--set", "device=cpu"], ["--steps", "perf,train"], ["--set", "epochs=many"], ["--device", "tpu"]):
        with pytest.raises(SystemExit):
            check.parse_args(bad)


def test_sweep_file_plans_three_runs_and_the_gps_run_takes_the_strong_run_as_prior(tmp_path):
    spec = load_sweep(check.SWEEP_FILE)
    assert spec.name == check.SWEEP_NAME and spec.wandb.mode == "disabled"
    (tmp_path / "c.tar.gz").write_bytes(b"archive")  # planning hashes the data's content into run_id
    overrides = check.sweep_overrides("cpu", check.CPU_SIZES, 2, tmp_path / "c.tar.gz", tmp_path / "data", ["seed=3"])
    plan = expand(spec, overrides)
    assert len(plan.cells) == check.PLANNED_RUNS
    cells = {(c.axes["aug"], str(c.axes["prior"]).split(":")[0]): c for c in plan.cells}
    strong, weak, gps = cells["strong", "none"], cells["weak", "none"], cells["weak", "run"]
    assert gps.depends_on == strong.run_id and gps.config.prior == f"run:{strong.run_id}" and gps.config.k == 5
    assert weak.depends_on is None and weak.config.k == 0 and gps.config.aug == weak.config.aug == "weak"
    pipelines = {repr(resolve_aug_params(c.aug, c.aug_args, 32, c.method)) for c in (weak.config, gps.config)}
    assert len(pipelines) == 1  # the GPS run and its plain twin augment alike
    for cell in plan.cells:
        c = cell.config
        assert (c.method, c.dataset, c.device, c.epochs, c.eval_every, c.subset, c.batch_size, c.seed) == (
            "simclr",
            "cifar10",
            "cpu",
            2,
            1,
            600,
            64,
            3,
        )
        assert (c.backbone, c.compile, c.data_path, c.data_dir) == (
            "small",
            False,
            str(tmp_path / "c.tar.gz"),
            str(tmp_path / "data"),
        )
    assert check.strong_config(overrides).run_id == strong.run_id  # the precision check's run
    gpu = expand(spec, check.sweep_overrides("cuda", check.GPU_SIZES, 30, tmp_path / "c.tar.gz", tmp_path, []))
    for cell in gpu.cells:  # every training image, the CIFAR ResNet-18, batch 512, compiled, a 6-point curve
        c = cell.config
        assert (c.subset, c.batch_size, c.compile, c.eval_every, c.device) == (None, 512, True, 5, "cuda")
        assert resolve_backbone_name(c.backbone, 32) == "cifar_resnet18"


def test_epoch_choice_fits_the_budget_at_the_measured_or_estimated_speed():
    sweep_budget = check.BUDGET_S - 150 - check.PRECISION_MAX_S - check.SUMMARY_RESERVE_S  # perf took 150 s

    def cost(epochs: int, epoch_s: float) -> float:
        return check.fixed_seconds(epochs) + check.PLANNED_RUNS * epochs * epoch_s * check.SAFETY

    epochs = check.choose_epochs(sweep_budget, check.EPOCH_S_DESIGN)
    assert cost(epochs, check.EPOCH_S_DESIGN) <= sweep_budget < cost(epochs + 1, check.EPOCH_S_DESIGN)
    assert epochs >= 30  # the aim, at DESIGN.md's 1.8 s per epoch
    assert check.choose_epochs(sweep_budget, 1.0) > epochs and check.choose_epochs(10, 1.8) == 1
    assert check.choose_epochs(sweep_budget, check.EPOCH_S_DESIGN, cold=True) < epochs  # nothing compiled yet
    assert check.choose_epochs(1e6, 0.1) == 200
    perf = {"figures_images_per_s": {"pipeline": 50_000.0}, "setup": {"train_images": 50_000}}
    assert check.epoch_seconds_from_perf(perf) == 2.0  # two views of each image
    phases = {"step": {"figures": {"pipeline": 100_000.0}, "setup": {"train_images": 50_000}}}
    assert check.epoch_seconds_from_perf(phases) == 1.0 and check.epoch_seconds_from_perf({}) is None


def _write_sweep(work: Path, now: float) -> dict[str, Path]:
    """A sweep folder caught mid-way: strong done (5 epochs, 100.2 s wall), weak running (3 of 5), GPS new."""
    sweep = work / "results" / check.SWEEP_NAME
    axes = {
        "strong": {"method": "simclr", "aug": "strong", "prior": "none"},
        "weak": {"method": "simclr", "aug": "weak", "prior": "none"},
        "gps": {"method": "simclr", "aug": "weak", "prior": "run:method=simclr,aug=strong"},
    }
    ids = {"strong": "aaaaaaaaaaaa", "weak": "bbbbbbbbbbbb", "gps": "cccccccccccc"}
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"runs": [{"run_id": ids[k], "axes": axes[k]} for k in ids]}))
    folders = {}
    for name, seconds, state in (("strong", [20.0, 1.5, 1.6, 1.5, 1.4], "done"), ("weak", [10.0, 1.5, 1.5], "running")):
        folder = folders[name] = sweep / ids[name]
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"epochs": 5}))
        (folder / "status.json").write_text(json.dumps({"state": state}))
        (folder / "metrics.jsonl").write_text(
            "".join(
                json.dumps({"epoch": i + 1, "loss": 5.0 - i / 10, "epoch_seconds": s, "val_knn_acc": 0.3 + i / 100})
                + "\n"
                for i, s in enumerate(seconds)
            )
        )
        (folder / "checkpoint.pt").write_bytes(b"not carried back")
        os.utime(folder / "config.json", (now - 200, now - 200))
    result = {"knn_acc": 0.61, "linear_acc": 0.655, "eval_seconds": 12.0, "images_per_s": 60_000.0}
    (folders["strong"] / "result.json").write_text(json.dumps(result))
    os.utime(folders["strong"] / "result.json", (now - 200 + 100.2, now - 200 + 100.2))
    return folders


def test_extrapolation_and_projection_from_measured_epochs(tmp_path):
    now = time.time()
    _write_sweep(tmp_path, now)
    runs = check.read_runs(tmp_path / "results" / check.SWEEP_NAME)
    assert [(r.label, r.state, len(r.epochs)) for r in runs] == [
        ("SimCLR strong", "done", 5),
        ("SimCLR weak", "running", 3),
        ("GPS-SimCLR weak (prior: strong-DA run)", "new", 0),
    ]
    # 200 x median(1.5, 1.6, 1.5, 1.4) + (20 - 1.5) first-epoch excess + 12 evaluation + (100.2 - 26 - 12) the rest
    estimate = check.extrapolate(runs[0])
    assert estimate["steady_epoch_seconds"] == 1.5 and estimate["first_epoch_excess_seconds"] == 18.5
    assert estimate["other_seconds"] == pytest.approx(62.2, abs=1e-3)
    assert estimate["total_seconds"] == pytest.approx(300 + 18.5 + 12 + 62.2, abs=1e-3)
    assert estimate["meets_target"] and estimate["complete"]
    assert "200 x 1.500 s" in estimate["formula"] and "= 393 s = 6.55 min" in estimate["formula"]
    partial = check.extrapolate(runs[1])  # running: no evaluation yet, and it says so
    assert not partial["complete"] and partial["total_seconds"] == pytest.approx(200 * 1.5 + 8.5)
    assert check.extrapolate(runs[2]) is None
    # still to do: weak 2 epochs x 1.5 + 12 evaluation + 2 val kNN x 1.5; GPS 5 x 1.5 + (100.2 - 5 x 1.5) + 10
    remaining = check.project_remaining(runs, planned_epochs=5)
    assert remaining == pytest.approx(3 + 12 + 2 * check.ONLINE_EVAL_S + 7.5 + 92.7 + check.GPS_SETUP_S, abs=1e-3)
    watch = check.SweepWatch(
        tmp_path / "results" / check.SWEEP_NAME, 5, now + remaining + 60, 200.0, tmp_path / "out", tmp_path, "stop"
    )
    assert watch() is None  # on time (summary.json and runs.tar.gz refreshed meanwhile)
    late = check.SweepWatch(
        tmp_path / "results" / check.SWEEP_NAME, 5, now + remaining - 30, 200.0, tmp_path / "out", tmp_path, "stop"
    )
    reason = late()
    assert reason.startswith("falling behind") and "--epochs" in reason
    assert (
        check.SweepWatch(
            tmp_path / "results" / check.SWEEP_NAME,
            5,
            now + remaining - 30,
            200.0,
            tmp_path / "out",
            tmp_path,
            "continue",
        )()
        is None
    )


def test_summary_reports_what_partial_outputs_hold(tmp_path, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    _write_sweep(work, time.time())
    failed = work / "results" / check.SWEEP_NAME / "cccccccccccc"
    failed.mkdir()
    (failed / "status.json").write_text(
        json.dumps(
            {
                "state": "failed",
                "error": "TrainingError: boom",
                "traceback": "Traceback (most recent call last):\n  at x\nboom",
            }
        )
    )
    out.mkdir()
    (out / "perf-phases.json").write_text(
        json.dumps(
            {
                "step": {
                    "figures": {"ceiling": 80_000.0, "pipeline": 68_000.0, "dataloader_train": 12_000.0},
                    "setup": {"backbone": "resnet18", "batch_size": 512, "compiled_graphs": 1, "graph_breaks": 0},
                    "host_syncs": {},
                },
                "phase_seconds": {"step": 95.0},
            }
        )
    )
    (out / "precision.json").write_text(
        json.dumps(
            {
                "note": "n",
                "steps": [
                    {"step": 1, "lr": 3e-5, "bf16": 6.2, "fp32": 6.21, "rel_diff": 0.01 / 6.21},
                    {"step": 2, "lr": 1e-4, "bf16": 6.1},
                ],
            }
        )
    )
    summary = check.snapshot(out, work, quiet=False)
    printed = capsys.readouterr().out
    assert "CUT OFF" in printed and "pipeline_vs_ceiling           0.85  (H200 target >= 0.8: met)" in printed
    assert "pipeline_vs_dataloader        5.67  (H200 target >= 4: met)" in printed
    assert "SimCLR strong" in printed and "65.50%" in printed and "running" in printed and "failed" in printed
    assert "error: TrainingError: boom" in printed and "      | boom" in printed  # a failed run says why
    assert "200 x 1.500 s" in printed and "meets the 7-minute target" in printed
    assert "max relative difference 1.61e-03 over 1 step(s): agree" in printed
    assert json.loads((out / "summary.json").read_text())["runs"][0]["result"]["linear_acc"] == 0.655
    assert summary["perf"]["partial"] and summary["extrapolated_200_epochs"]["complete"]
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert "gpu-check/aaaaaaaaaaaa/metrics.jsonl" in names and "gpu-check/sweep.json" in names
    assert not any(name.endswith(".pt") for name in names)  # checkpoints stay behind


def test_perf_reports_each_phase_as_soon_as_it_is_measured(tmp_path, monkeypatch, capsys):
    """A perf cut off in its second phase still leaves the first one's figures in perf-phases.json."""
    import benchmark.perf.knn as knn
    import benchmark.perf.registry as registry
    import benchmark.perf.step as step

    measures = step.StepMeasures({"ceiling": 10.0, "pipeline": 9.0}, {"train_images": 100}, {}, "table", {})
    monkeypatch.setattr(step, "step_figures", lambda *a, **k: measures)

    def cut_off(*args, **kwargs):
        raise KeyboardInterrupt  # what SIGINT does at the step's time limit

    monkeypatch.setattr(knn, "knn_figures", cut_off)
    monkeypatch.setattr(registry, "registry_seconds", lambda *a, **k: pytest.fail("after the cut"))
    partial = tmp_path / "perf-phases.json"
    code = check.cmd_perf_phases(
        [
            "--partial",
            str(partial),
            "--",
            "perf",
            "--device",
            "cpu",
            "--dataset",
            "digits",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "perf.json"),
        ]
    )
    assert code == 130 and not (tmp_path / "perf.json").exists()
    found = json.loads(partial.read_text())
    assert found["step"]["figures"] == {"ceiling": 10.0, "pipeline": 9.0} and "profile_table" not in found["step"]
    assert set(found["phase_seconds"]) == {"step"} and "perf phase step measured" in capsys.readouterr().out


def test_a_step_is_cut_off_at_its_limit_or_stopped_by_its_watch(tmp_path, capsys):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sleeper = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    started = time.time()
    outcome = check.run_step("slow", sleeper, env, limit=1.5, poll_s=0.1)
    assert outcome.outcome == "cut off" and outcome.seconds < 10 and time.time() - started < 10
    assert "[slow] started" in capsys.readouterr().out
    outcome = check.run_step("watched", sleeper, env, limit=60, poll_s=0.1, watch=lambda: "falling behind: test")
    assert outcome.outcome == "stopped early" and outcome.note == "falling behind: test"
    assert check.run_step("quick", [sys.executable, "-c", "pass"], env, limit=30, poll_s=0.1).outcome == "done"
    failed = check.run_step("bad", [sys.executable, "-c", "raise SystemExit(3)"], env, limit=30, poll_s=0.1)
    assert (failed.outcome, failed.rc) == ("failed (exit code 3)", 3)
    assert check.run_step("late", sleeper, env, limit=0).outcome.startswith("skipped")


def test_check_sh_says_what_is_missing_in_one_line(tmp_path):
    """Without a CIFAR-10 archive the check stops before any work, naming where it looked."""
    result = subprocess.run(
        [
            "bash",
            str(REPO / "gpu" / "check.sh"),
            "--device",
            "cpu",
            "--data-path",
            str(tmp_path / "none.tar.gz"),
            "--work",
            str(tmp_path / "work"),
        ],
        env={**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no CIFAR-10 archive" in result.stdout and "gpu/assemble.sh" in result.stdout
    assert (tmp_path / "out" / "check.log").read_text() == result.stdout  # check.sh copies everything there
