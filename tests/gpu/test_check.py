"""The GPU check (gpu/check/) where no GPU is: its options and sizes, the plan of sweeps/gpu-check.yaml,
the time plan's epoch choice, the 200-epoch extrapolation, the projection that stops a sweep falling
behind, the steps' time limits, the summary of partial outputs, the offline bundle, and the check itself
on the CPU (make gpu-check-dry)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

import pytest

from benchmark.augment import StrongRecipe, resolve_aug_params
from benchmark.backbones import resolve_backbone_name
from benchmark.cli import build_parser
from benchmark.methods import METHODS
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep
from gpu.check import bundle, closure, commands, offline, plan, projection, runs, steps, summary
from gpu.check.options import CPU_SIZES, GPU_SIZES, CheckError, Sizes, parse_args, seconds
from gpu.check.watch import SweepWatch
from tests.conftest import REPO

CHECK_SH = REPO / "gpu" / "check.sh"


def strong_of(method: str) -> StrongRecipe:
    return METHODS.get(method).recipe.strong


def test_options_pick_the_device_sizes_and_route_the_sets():
    args = parse_args(["--device", "cpu"])
    assert args.sizes == CPU_SIZES and args.sets == [] and args.steps == ["perf", "sweep"]
    assert args.budget == 20 * 60  # the default
    args = parse_args(
        ["--set", "epochs=40", "--set", "method_args.temperature=0.5", "--batch-size", "256"]
        + ["--set", "compile=false", "--steps", "sweep", "--budget", "1.5h", "--precision-steps", "0"]
    )
    assert (args.sizes.epochs, args.sizes.batch_size, args.sizes.compile, args.sizes.precision_steps) == (
        40,
        256,
        False,
        0,
    )
    assert (args.sizes.subset, args.sizes.backbone) == (None, "resnet18")  # the GPU's sizes otherwise
    assert args.sets == ["method_args.temperature=0.5"] and args.steps == ["sweep"] and args.budget == 5400
    assert parse_args([]).sizes.epochs is None  # on a GPU: the most that fit
    assert [seconds(t) for t in ("900", "900s", "15m", "0.5h")] == [900, 900, 900, 1800]
    bad = (["--set", "device=cpu"], ["--steps", "perf,train"], ["--set", "epochs=many"], ["--device", "tpu"])
    for argv in bad + (["--budget", "soon"], ["--budget", "0m"]):
        with pytest.raises(SystemExit):
            parse_args(argv)


def test_the_check_asks_gpsbench_perf_for_its_phases_and_precision_check(tmp_path):
    """The perf step speaks perf's public options: its command parses as `gpsbench perf` flags."""
    cmd = commands.perf_command("cuda", GPU_SIZES, tmp_path / "c.tar.gz", tmp_path / "data", tmp_path / "out")
    assert cmd[:3] == [sys.executable, "-m", "benchmark.cli"]
    args = build_parser().parse_args(cmd[3:])
    assert (args.precision_check, args.phases, args.out) == (
        20,
        str(tmp_path / "out" / "perf-phases.json"),
        str(tmp_path / "out" / "perf.json"),
    )
    assert (args.quick, args.batch_size, args.backbone, args.assignments) == (True, 512, "resnet18", ["compile=true"])
    assert 1 <= args.workers <= (os.cpu_count() or 1)  # a DataLoader worker per CPU this process may use
    assert args.epochs == 200  # the lr schedule of the precision check's steps: a 200-epoch run's
    cpu = build_parser().parse_args(
        commands.perf_command("cpu", CPU_SIZES, tmp_path / "c.tar.gz", tmp_path, tmp_path)[3:]
    )
    assert (cpu.subset, cpu.knn_images, cpu.approx_images, cpu.precision_check) == (600, 600, 0, 3)
    no_check = commands.perf_command("cpu", Sizes(precision_steps=0), tmp_path, tmp_path, tmp_path)
    assert "--precision-check" not in no_check


def test_sweep_file_plans_three_runs_and_the_gps_run_takes_the_strong_run_as_prior(tmp_path):
    spec = load_sweep(commands.SWEEP_FILE)
    assert spec.name == commands.SWEEP_NAME and spec.wandb.mode == "disabled"
    (tmp_path / "c.tar.gz").write_bytes(b"archive")  # planning hashes the data's content into run_id
    overrides = commands.sweep_overrides("cpu", CPU_SIZES, 2, tmp_path / "c.tar.gz", tmp_path / "data", ["seed=3"])
    planned = expand(spec, overrides)
    assert len(planned.cells) == plan.PLANNED_RUNS
    cells = {(c.axes["aug"], str(c.axes["prior"]).split(":")[0]): c for c in planned.cells}
    strong, weak, gps = cells["strong", "none"], cells["weak", "none"], cells["weak", "run"]
    assert gps.depends_on == strong.run_id and gps.config.prior == f"run:{strong.run_id}" and gps.config.k == 5
    assert weak.depends_on is None and weak.config.k == 0 and gps.config.aug == weak.config.aug == "weak"
    pipelines = {
        repr(resolve_aug_params(c.aug, c.aug_args, 32, strong_of(c.method))) for c in (weak.config, gps.config)
    }
    assert len(pipelines) == 1  # the GPS run and its plain twin augment alike
    for cell in planned.cells:
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
        assert (c.backbone, c.compile, c.data_path) == ("small", False, str(tmp_path / "c.tar.gz"))
    gpu = expand(spec, commands.sweep_overrides("cuda", GPU_SIZES, 30, tmp_path / "c.tar.gz", tmp_path, []))
    for cell in gpu.cells:  # every training image, the CIFAR ResNet-18, batch 512, compiled, a 6-point curve
        c = cell.config
        assert (c.subset, c.batch_size, c.compile, c.eval_every, c.device) == (None, 512, True, 5, "cuda")
        assert resolve_backbone_name(c.backbone, 32) == "cifar_resnet18"
    cmd = commands.sweep_command(overrides, tmp_path / "results")
    args = build_parser().parse_args(cmd[3:])
    assert args.executor == "debug" and "epochs=2" in args.assignments


def test_time_plan_fits_the_epochs_to_the_measured_or_estimated_speed():
    limit = 20 * 60 - 200 - plan.SUMMARY_RESERVE_S  # perf took 200 s of the default budget

    def cost(epochs: int, epoch_s: float) -> float:
        return plan.fixed_seconds(epochs) + plan.PLANNED_RUNS * epochs * epoch_s * plan.SAFETY

    epochs = plan.choose_epochs(limit, plan.EPOCH_S_ESTIMATE)
    assert cost(epochs, plan.EPOCH_S_ESTIMATE) <= limit < cost(epochs + 1, plan.EPOCH_S_ESTIMATE)
    assert epochs >= 100  # the default budget's aim at the estimated 1.8 s per epoch
    assert plan.choose_epochs(limit, 1.0) > epochs and plan.choose_epochs(10, 1.8) == 1
    assert plan.choose_epochs(limit, plan.EPOCH_S_ESTIMATE, cold=True) < epochs  # nothing compiled yet
    assert plan.choose_epochs(1e6, 0.1) == plan.MOST_EPOCHS
    perf = {"figures_images_per_s": {"pipeline": 50_000.0}, "setup": {"train_images": 50_000}}
    assert plan.epoch_seconds_from_perf(perf) == 2.0  # two views of each image
    phases = {"step": {"figures": {"pipeline": 100_000.0}, "setup": {"train_images": 50_000}}}
    assert plan.epoch_seconds_from_perf(phases) == 1.0 and plan.epoch_seconds_from_perf({}) is None
    timing = plan.TimePlan(600, ["perf", "sweep"])
    assert timing.perf_limit() == pytest.approx(plan.PERF_SHARE * 600, abs=1)
    assert 580 < timing.sweep_limit() <= 600 - plan.SUMMARY_RESERVE_S
    assert plan.TimePlan(200, ["perf", "sweep"]).perf_limit() <= 200 - plan.SWEEP_MIN_S - plan.SUMMARY_RESERVE_S
    assert timing.sweep_epochs(500, 7, perf) == (7, "given")
    chosen, why = timing.sweep_epochs(500, None, perf)
    assert chosen == plan.choose_epochs(500, 2.0) and "from perf's pipeline figure" in why
    assert "estimated" in timing.sweep_epochs(500, None, {})[1]


def _write_sweep(work: Path, now: float) -> dict[str, Path]:
    """A sweep folder caught mid-way: strong done (5 epochs, 100.2 s wall), weak running (3 of 5), GPS new."""
    sweep = work / "results" / commands.SWEEP_NAME
    axes = {
        "strong": {"method": "simclr", "aug": "strong", "prior": "none"},
        "weak": {"method": "simclr", "aug": "weak", "prior": "none"},
        "gps": {"method": "simclr", "aug": "weak", "prior": "run:method=simclr,aug=strong"},
    }
    ids = {"strong": "aaaaaaaaaaaa", "weak": "bbbbbbbbbbbb", "gps": "cccccccccccc"}
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"runs": [{"run_id": ids[k], "axes": axes[k]} for k in ids]}))
    folders = {}
    for name, epoch_s, state in (("strong", [20.0, 1.5, 1.6, 1.5, 1.4], "done"), ("weak", [10.0, 1.5, 1.5], "running")):
        folder = folders[name] = sweep / ids[name]
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"epochs": 5}))
        (folder / "status.json").write_text(json.dumps({"state": state}))
        (folder / "metrics.jsonl").write_text(
            "".join(
                json.dumps({"epoch": i + 1, "loss": 5.0 - i / 10, "epoch_seconds": s, "val_knn_acc": 0.3 + i / 100})
                + "\n"
                for i, s in enumerate(epoch_s)
            )
        )
        (folder / "checkpoint.pt").write_bytes(b"not archived")
        os.utime(folder / "config.json", (now - 200, now - 200))
    (folders["weak"] / "metrics.jsonl").open("a").write('{"epoch": 4, "lo')  # a line being written
    result = {"knn_acc": 0.61, "linear_acc": 0.655, "eval_seconds": 12.0, "images_per_s": 60_000.0}
    (folders["strong"] / "result.json").write_text(json.dumps(result))
    os.utime(folders["strong"] / "result.json", (now - 200 + 100.2, now - 200 + 100.2))
    return folders


def test_extrapolation_and_projection_from_measured_epochs(tmp_path):
    now = time.time()
    _write_sweep(tmp_path, now)
    found = runs.read_runs(tmp_path / "results" / commands.SWEEP_NAME)
    assert [(r.label, r.state, len(r.epochs)) for r in found] == [
        ("SimCLR strong", "done", 5),
        ("SimCLR weak", "running", 3),
        ("GPS-SimCLR weak (prior: strong-DA run)", "new", 0),
    ]
    # 200 x median(1.5, 1.6, 1.5, 1.4) + (20 - 1.5) first-epoch excess + 12 evaluation + (100.2 - 26 - 12) the rest
    estimate = projection.extrapolate(found[0])
    assert estimate["steady_epoch_seconds"] == 1.5 and estimate["first_epoch_excess_seconds"] == 18.5
    assert estimate["other_seconds"] == pytest.approx(62.2, abs=1e-3)
    assert estimate["total_seconds"] == pytest.approx(300 + 18.5 + 12 + 62.2, abs=1e-3)
    assert estimate["meets_target"] and estimate["complete"]
    assert "200 x 1.500 s" in estimate["formula"] and "= 393 s = 6.55 min" in estimate["formula"]
    partial = projection.extrapolate(found[1])  # running: no evaluation yet, and it says so
    assert not partial["complete"] and partial["total_seconds"] == pytest.approx(200 * 1.5 + 8.5)
    assert projection.extrapolate(found[2]) is None
    # still to do: weak 2 epochs x 1.5 + 12 evaluation + 2 val kNN x 1.5; GPS 5 x 1.5 + (100.2 - 5 x 1.5) + 10
    remaining = projection.project_remaining(found, planned_epochs=5)
    assert remaining == pytest.approx(3 + 12 + 2 * plan.ONLINE_EVAL_S + 7.5 + 92.7 + plan.GPS_SETUP_S, abs=1e-3)
    sweep_dir, out = tmp_path / "results" / commands.SWEEP_NAME, tmp_path / "out"
    assert SweepWatch(sweep_dir, 5, now + remaining + 60, 200.0, out, tmp_path, "stop")() is None  # on time
    assert (out / "summary.json").is_file() and (out / "runs.tar.gz").is_file()  # refreshed meanwhile
    reason = SweepWatch(sweep_dir, 5, now + remaining - 30, 200.0, out, tmp_path, "stop")()
    assert reason.startswith("falling behind") and "--epochs" in reason
    assert SweepWatch(sweep_dir, 5, now + remaining - 30, 200.0, out, tmp_path, "continue")() is None


def test_summary_reports_what_partial_outputs_hold(tmp_path, capsys):
    out, work = tmp_path / "out", tmp_path / "work"
    _write_sweep(work, time.time())
    failed = work / "results" / commands.SWEEP_NAME / "cccccccccccc"
    failed.mkdir()
    traceback = "Traceback (most recent call last):\n  at x\nboom"
    (failed / "status.json").write_text(
        json.dumps({"state": "failed", "error": "TrainingError: boom", "traceback": traceback})
    )
    out.mkdir()
    step = {
        "figures": {"ceiling": 80_000.0, "pipeline": 68_000.0, "dataloader_train": 12_000.0},
        "setup": {"backbone": "resnet18", "batch_size": 512, "compiled_graphs": 1, "graph_breaks": 0},
        "host_syncs": {},
    }
    rows = [{"step": 1, "lr": 3e-5, "bf16": 6.2, "fp32": 6.21, "rel_diff": 0.01 / 6.21}]
    precision = {"setup": "s", "steps": rows, "max_rel_diff": 0.01 / 6.21, "tolerance": 0.02, "agree": True}
    phases = {"step": step, "precision": precision, "phase_seconds": {"step": 95.0, "precision": 9.0}}
    (out / "perf-phases.json").write_text(json.dumps(phases))  # perf cut off after its precision check
    found = summary.snapshot(out, work, quiet=False)
    printed = capsys.readouterr().out
    assert "CUT OFF" in printed and "pipeline_vs_ceiling           0.85  (H200 target >= 0.8: met)" in printed
    assert "pipeline_vs_dataloader        5.67  (H200 target >= 4: met)" in printed
    assert "SimCLR strong" in printed and "65.50%" in printed and "running" in printed and "failed" in printed
    assert "error: TrainingError: boom" in printed and "      | boom" in printed  # a failed run says why
    assert "200 x 1.500 s" in printed and "meets the 7-minute target" in printed
    assert "max relative difference 1.61e-03 over 1 step(s): agree" in printed
    assert json.loads((out / "summary.json").read_text())["runs"][0]["result"]["linear_acc"] == 0.655
    assert found["perf"]["partial"] and found["extrapolated_200_epochs"]["complete"] and found["precision"]["agree"]
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert "gpu-check/aaaaaaaaaaaa/metrics.jsonl" in names and "gpu-check/sweep.json" in names
    assert not any(name.endswith(".pt") for name in names)  # checkpoints stay behind
    empty = summary.snapshot(tmp_path / "none", tmp_path / "none", quiet=False)
    assert empty["perf"] is None and empty["runs"] == [] and "nothing measured" in capsys.readouterr().out


def test_a_step_is_cut_off_at_its_limit_or_stopped_by_its_watch(tmp_path, capsys):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sleeper = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    started = time.time()
    outcome = steps.run_step("slow", sleeper, env, limit=1.5, poll_s=0.1)
    assert outcome.outcome == "cut off" and outcome.seconds < 10 and time.time() - started < 10
    assert "[slow] started" in capsys.readouterr().out
    outcome = steps.run_step("watched", sleeper, env, limit=60, poll_s=0.1, watch=lambda: "falling behind: test")
    assert outcome.outcome == "stopped early" and outcome.note == "falling behind: test"
    assert steps.run_step("quick", [sys.executable, "-c", "pass"], env, limit=30, poll_s=0.1).outcome == "done"
    failed = steps.run_step("bad", [sys.executable, "-c", "raise SystemExit(3)"], env, limit=30, poll_s=0.1)
    assert (failed.outcome, failed.rc) == ("failed (exit code 3)", 3)
    assert steps.run_step("late", sleeper, env, limit=0).outcome.startswith("skipped")


def _check_sh(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "GPSBENCH_CIFAR10_ARCHIVE"}
    environment.update(PYTHON=sys.executable, **(env or {}))
    return subprocess.run(
        ["bash", str(CHECK_SH), *args], env=environment, capture_output=True, text=True, timeout=timeout
    )


def test_check_sh_says_what_is_missing_in_one_line(tmp_path):
    """Without a CIFAR-10 archive the check stops before any work, naming where it looked."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("perf.json", "check.log"):  # an earlier check's results: kept when this one cannot start
        (out / name).write_text("earlier")
    result = _check_sh("--device", "cpu", "--data-path", str(tmp_path / "none.tar.gz"), "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"gpu-check: error: no CIFAR-10 archive at {tmp_path / 'none.tar.gz'}: give --data-path "
        "(docs/gpu-check.md, Data)"
    ]
    assert (out / "perf.json").read_text() == (out / "check.log").read_text() == "earlier"
    result = _check_sh("--from-bundle", str(tmp_path))
    assert result.returncode == 2 and "no bundle.json, requirements.txt and wheels/ there" in result.stderr


@pytest.mark.slow
@pytest.mark.real_data
def test_the_check_runs_on_the_cpu_and_summarises(small_cifar_archive, tmp_path):
    """make gpu-check-dry at smaller sizes: the sweep's three runs train and evaluate on real CIFAR-10
    JPEGs, the GPS run on the strong run's backbone, and the summary reads them (perf: tests/perf/test_perf.py)."""
    out, work = tmp_path / "out", tmp_path / "work"
    result = _check_sh(
        *("--device", "cpu", "--steps", "sweep", "--data-path", str(small_cifar_archive)),
        *("--out", str(out), "--work", str(work), "--batch-size", "32", "--subset", "160", "--epochs", "2"),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "summary.json").read_text())
    assert [(r["label"], r["state"], r["epochs_done"]) for r in report["runs"]] == [
        ("SimCLR strong", "done", 2),
        ("SimCLR weak", "done", 2),
        ("GPS-SimCLR weak (prior: strong-DA run)", "done", 2),
    ]
    assert all(0 <= r["result"]["linear_acc"] <= 1 for r in report["runs"])
    assert report["steps"]["sweep"]["outcome"] == "done" and report["plan"]["epochs_basis"] == "given"
    assert report["extrapolated_200_epochs"]["steady_epoch_seconds"] > 0
    log = (out / "check.log").read_text()
    assert "gpu-check summary" in log and "[sweep] " in log and "GPS gain with weak DA" in log
    assert {"check.log", "steps.json", "summary.json", "runs.tar.gz"} <= {p.name for p in out.iterdir()}
    again = _check_sh("--summary", "--out", str(out), "--work", str(work))
    assert again.returncode == 0 and "GPS-SimCLR weak (prior: strong-DA run)" in again.stdout


def test_the_bundle_pins_what_the_project_needs_for_the_node_python():
    pins = closure.requirement_closure(closure.Target("3.11"))
    for name in ("faiss-cpu", "submitit", "timm", "wandb", "optuna", "pandas", "scikit-learn"):
        assert pins[name] == f"{metadata.metadata(name)['Name']}=={metadata.version(name)}"  # as tested here
    assert not [n for n in pins if n.startswith(("torch", "nvidia", "triton"))]  # the node's torch and its needs
    with_torch = closure.requirement_closure(closure.Target("3.11"), skip=frozenset())
    assert {"torch", "torchvision", "triton"} <= set(with_torch) and set(pins) < set(with_torch)
    # markers are evaluated for the node: anyio needs exceptiongroup below Python 3.11 only (not installed
    # here, so pip chooses its version within anyio's specifier)
    assert closure.requirement_closure(closure.Target("3.10"), root="anyio")["exceptiongroup"].startswith(
        "exceptiongroup>="
    )
    assert "exceptiongroup" not in closure.requirement_closure(closure.Target("3.12"), root="anyio")
    assert closure.machine_of(bundle.MANYLINUX_X86_64) == "x86_64"
    assert closure.machine_of(["manylinux_2_28_aarch64", "manylinux2014_aarch64"]) == "aarch64"
    with pytest.raises(ValueError, match="one machine"):
        closure.machine_of(["manylinux_2_28_aarch64", "manylinux2014_x86_64"])


def test_the_bundle_copies_the_checkout_as_git_lists_it(tmp_path):
    commit = bundle.copy_code(tmp_path / "code", leave_out=tmp_path)
    assert len(commit) == 40
    for name in ("gpu/check.sh", "gpu/check/__main__.py", "sweeps/gpu-check.yaml", "results/reference/paper.csv"):
        assert (tmp_path / "code" / name).is_file(), name
    assert not (tmp_path / "code" / ".venv").exists() and not (tmp_path / "code" / ".git").exists()


def _wheel(tmp_path: Path) -> Path:
    """A real wheel of a one-module project, built here without an index."""
    project = tmp_path / "project"
    (project / "gpscheckprobe").mkdir(parents=True)
    (project / "gpscheckprobe" / "__init__.py").write_text("VALUE = 42\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "gpscheckprobe"\nversion = "1.0"\n'
    )
    wheels = tmp_path / "bundle" / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run(build + ["-w", str(wheels), str(project)], check=True, capture_output=True)
    return tmp_path / "bundle"


@pytest.mark.wheel
def test_a_bundle_installs_once_without_an_index_and_goes_first_on_the_path(tmp_path, monkeypatch):
    made = _wheel(tmp_path)
    (made / "requirements.txt").write_text("gpscheckprobe==1.0\n")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    (made / "bundle.json").write_text(json.dumps({"python_version": here}))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setattr(sys, "path", list(sys.path))
    offline.use_bundle(made)
    site = made / "site"
    assert sys.path[0] == str(site) and os.environ["PYTHONPATH"] == f"{site}{os.pathsep}/elsewhere"
    probe = subprocess.run(
        [sys.executable, "-c", "import gpscheckprobe; print(gpscheckprobe.VALUE)"], capture_output=True
    )
    assert probe.stdout.strip() == b"42"  # a step sees the bundle's packages
    installed = (site / offline.STAMP).stat().st_mtime_ns
    assert offline.bundle_site(made) == site and (site / offline.STAMP).stat().st_mtime_ns == installed  # once
    (made / "bundle.json").write_text(json.dumps({"python_version": "3.99"}))
    with pytest.raises(CheckError, match=f"wheels are for CPython 3.99, this is {here}"):
        offline.bundle_site(made)
