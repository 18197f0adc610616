"""The GPU check (issue 19): the speed figures and the paper's CIFAR-10 claim in one prepared run.

    python gpu/check.py [run] --device cuda|cpu [--budget S] [--epochs N] [--set KEY=VALUE ...]
                              [--steps perf,sweep,precision] [--out DIR] [--work DIR] [--data-path P]
    python gpu/check.py summary [--out DIR] [--work DIR]      # the summary again, from the files

`gpu/check.sh` installs the carried wheels, then calls `run`. Within `--budget` seconds (555: a device
call is at most 600) it runs, each step in its own process group under its own time limit:

1. perf:      `gpsbench perf --quick` with torch.compile on, batch 512 -> $OUT/perf.json (each phase's
              figures also go to $OUT/perf-phases.json as soon as they are measured);
2. sweep:     sweeps/gpu-check.yaml (SimCLR strong DA, weak DA, weak-DA GPS-SimCLR with the strong-DA
              run as prior) at the largest epoch count that fits the time left, chosen from the
              pipeline speed perf measured (else DESIGN.md's 1.8 s per epoch); stopped early, with the
              epoch count that would fit, when its measured epochs say it cannot finish in time;
3. precision: the first steps of the strong-DA run with bf16 autocast and in fp32 from the same seed,
              their losses side by side -> $OUT/precision.json;

then prints the summary (the figures, the three runs, the 200-epoch time extrapolated from the
measured epoch times, the precision check) from whatever files exist, so a step that was cut off
still reports what it measured. $OUT holds at most 8 files (what a device call brings back):
check.log, perf.json, perf-profile.txt, perf-phases.json, precision.json, summary.json, runs.tar.gz
(the sweep's run folders without checkpoints).

`--device cpu` is the dry run of the same script: small sizes (CPU_SIZES), flags and `--set` change them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

REPO = Path(__file__).resolve().parent.parent
SWEEP_FILE = REPO / "sweeps" / "gpu-check.yaml"
SWEEP_NAME = "gpu-check"
PLANNED_RUNS = 3
DEFAULT_OUT = REPO / "results" / "gpu-check" / "out"
DEFAULT_WORK = REPO / "results" / "gpu-check" / "work"
ARCHIVE = "cifar10-jpeg.tar.gz"
ARCHIVE_PLACES = (REPO / ".gpu" / "data" / ARCHIVE, REPO.parent / "shared" / "data" / ARCHIVE)
OUT_FILE_LIMIT = 8  # files a device call brings back from $OUT
OUT_FILES = ("perf.json", "perf-profile.txt", "perf-phases.json", "precision.json", "summary.json", "runs.tar.gz")

# ---- the time plan, in seconds from check.sh's start (GPU_CHECK_T0) -------------------------------
BUDGET_S = 555  # the device call's limit is 600 s: 45 s to spare (a stopped step takes up to 20 s more)
PERF_MAX_S = 180
SWEEP_MIN_S = 120
PRECISION_MAX_S = 45
PRECISION_MIN_S = 25
SUMMARY_RESERVE_S = 15
SWEEP_GRACE_S = 15  # a stopped sweep: SIGINT (its run saves `pending`), SIGKILL this much later

# ---- estimates that choose the epoch count before the sweep measures anything (one H200, CIFAR-10,
# ResNet-18, batch 512). The watcher replaces them by measured values as epochs and runs finish.
EPOCH_S_DESIGN = 1.8  # DESIGN.md: the prototype step at 55,000 views/s, 100,000 views an epoch
FIRST_RUN_SETUP_S = 30  # data from the cache, model, torch.compile (inductor's cache warm from perf)
COLD_COMPILE_S = 45  # more for the first run when perf did not compile the same step before it
RUN_SETUP_S = 15  # each later run: its model compiled again, from inductor's cache
EVAL_S = 20  # final kNN + linear probe: features of 60,000 images, L-BFGS over 6 strengths, refit
ONLINE_EVAL_S = 1.5  # one validation kNN (fp32 features of 50,000 images)
GPS_SETUP_S = 10  # the GPS run: its prior's embedding of 50,000 images and the exact top-k table
CURVE_POINTS = 6  # validation kNN points per run: eval_every = epochs // CURVE_POINTS
SAFETY = 1.15  # the epoch count is chosen for this much slower than estimated
BEHIND_SLACK = 0.05  # stop the sweep when its projected end passes the deadline by this share of its budget

PRECISION_RTOL = 0.02  # bf16 vs fp32 loss: relative difference per step that counts as agreeing
TARGETS = {"pipeline_vs_ceiling": 0.80, "pipeline_vs_dataloader": 4.0, "run_200_epochs_s": 7 * 60}


@dataclass(frozen=True)
class Sizes:
    """What the check measures with; `--device cpu` starts from CPU_SIZES (the dry run)."""

    batch_size: int = 512
    epochs: int | None = None  # None: the most that fit the budget
    subset: int | None = None  # None: every training image
    backbone: str = "resnet18"
    compile: bool = True  # in the sweep (perf always compiles)
    knn_images: int | None = None  # perf's table sizes (None: its --quick sizes)
    approx_images: int | None = None
    precision_steps: int = 20


GPU_SIZES = Sizes()
CPU_SIZES = Sizes(
    batch_size=64,
    epochs=2,
    subset=600,
    backbone="small",
    compile=False,
    knn_images=600,
    approx_images=0,
    precision_steps=3,
)
SIZE_KEYS = {"batch_size": int, "epochs": int, "subset": int, "backbone": str, "compile": bool}


# ================================================================================ arguments
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu/check.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (the dry run, small sizes)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for everything (default {BUDGET_S})")
    parser.add_argument("--epochs", type=int, help="sweep epochs (default: the most that fit the budget on cuda)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--subset", type=int, help="training images (default: all on cuda, 600 on cpu)")
    parser.add_argument("--backbone", help="default: resnet18 on cuda, small on cpu")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config key for the sweep and the precision check (epochs, batch_size, subset, "
        "backbone and compile also size perf and the epoch choice)",
    )
    parser.add_argument("--steps", default="perf,sweep,precision", help="which steps, comma-separated")
    parser.add_argument("--out", help="where the results go (default: $OUT, else results/gpu-check/out)")
    parser.add_argument("--work", help="runs and caches (default: results/gpu-check/work)")
    parser.add_argument(
        "--data-path", help=f"the CIFAR-10 archive (default: .gpu/data/{ARCHIVE}, else ../shared/data/{ARCHIVE})"
    )
    parser.add_argument(
        "--keep-runs",
        action="store_true",
        help="reuse the sweep's done runs of an earlier invocation (default: start afresh)",
    )
    parser.add_argument(
        "--on-behind",
        choices=("stop", "continue"),
        default="stop",
        help="when the sweep cannot finish in time: stop it at once (default) or let the time limit cut it",
    )
    args = parser.parse_args(argv)
    if args.device.split(":")[0] not in ("cuda", "cpu"):
        parser.error(f"--device {args.device!r}: valid: cuda, cuda:<i>, cpu")
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in ("perf", "sweep", "precision")]
    if unknown:
        parser.error(f"--steps: unknown {', '.join(unknown)}; valid: perf, sweep, precision")
    args.steps = steps
    try:
        args.sizes, args.sets = resolve_sizes(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def resolve_sizes(args: argparse.Namespace) -> tuple[Sizes, list[str]]:
    """The device's sizes < flags < `--set` of a sizing key; the other `--set`s pass through."""
    sizes = CPU_SIZES if args.device == "cpu" else GPU_SIZES
    flags = {"batch_size": args.batch_size, "epochs": args.epochs, "subset": args.subset, "backbone": args.backbone}
    sizes = dataclasses.replace(sizes, **{k: v for k, v in flags.items() if v is not None})
    rest = []
    for text in args.sets:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {text!r}")
        if key == "device":
            raise ValueError("--set device=...: use --device (it also picks the sizes)")
        if key in SIZE_KEYS:
            kind = SIZE_KEYS[key]
            try:
                value: Any = raw.lower() in ("1", "true", "yes", "on") if kind is bool else kind(raw)
            except ValueError:
                raise ValueError(f"--set {text}: {key} must be {kind.__name__}") from None
            sizes = dataclasses.replace(sizes, **{key: value})
        else:
            rest.append(text)
    return sizes, rest


def sweep_overrides(
    device: str, sizes: Sizes, epochs: int, data_path: Path, data_dir: Path, extra: list[str]
) -> list[str]:
    """The sweep's `--set`s: device, sizes, the chosen epochs with ~CURVE_POINTS validation points, data."""
    sets = [
        f"device={device}",
        f"batch_size={sizes.batch_size}",
        f"epochs={epochs}",
        f"eval_every={max(1, epochs // CURVE_POINTS)}",
        f"backbone={sizes.backbone}",
        f"compile={str(sizes.compile).lower()}",
        f"data_path={data_path}",
        f"data_dir={data_dir}",
    ]
    if sizes.subset is not None:
        sets.append(f"subset={sizes.subset}")
    return sets + list(extra)


def perf_args(device: str, sizes: Sizes, data_path: Path, data_dir: Path, out: Path) -> list[str]:
    args = [
        "perf",
        "--device",
        device,
        "--quick",
        "--batch-size",
        str(sizes.batch_size),
        "--set",
        "compile=true",
        "--backbone",
        sizes.backbone,
        "--data-path",
        str(data_path),
        "--data-dir",
        str(data_dir),
        "--out",
        str(out / "perf.json"),
    ]
    if sizes.subset is not None:
        args += ["--subset", str(sizes.subset)]
    if sizes.knn_images is not None:
        args += ["--knn-images", str(sizes.knn_images)]
    if sizes.approx_images is not None:
        args += ["--approx-images", str(sizes.approx_images)]
    return args


# ================================================================================ the time plan
def fixed_seconds(epochs: int, runs: int = PLANNED_RUNS, cold: bool = False) -> float:
    """Estimated seconds of the sweep outside its training epochs (`cold`: nothing compiled before it)."""
    online = ONLINE_EVAL_S * (epochs // max(1, epochs // CURVE_POINTS))
    return (
        FIRST_RUN_SETUP_S
        + (COLD_COMPILE_S if cold else 0)
        + (runs - 1) * RUN_SETUP_S
        + runs * (EVAL_S + online)
        + GPS_SETUP_S
    )


def choose_epochs(
    budget_s: float, epoch_s: float, runs: int = PLANNED_RUNS, most: int = 200, cold: bool = False
) -> int:
    """The most epochs (1..most) whose sweep, each epoch SAFETY times slower than `epoch_s`, fits."""
    best = 1
    for epochs in range(1, most + 1):
        if fixed_seconds(epochs, runs, cold) + runs * epochs * epoch_s * SAFETY <= budget_s:
            best = epochs
    return best


def epoch_seconds_from_perf(report: dict, train_images: int | None = None) -> float | None:
    """Seconds per epoch at perf's pipeline speed: 2 views of each training image."""
    figures = report.get("figures_images_per_s") or report.get("step", {}).get("figures") or {}
    pipeline = figures.get("pipeline")
    images = train_images or (report.get("setup") or report.get("step", {}).get("setup") or {}).get("train_images")
    if not pipeline or not images:
        return None
    return 2 * images / pipeline


# ================================================================================ run folders
@dataclass
class RunProgress:
    run_id: str
    label: str  # "SimCLR strong", "GPS-SimCLR weak (prior: strong-DA run)", ...
    axes: dict
    state: str  # new, running, pending, failed, done
    epochs: list[dict] = field(default_factory=list)  # metrics.jsonl
    result: dict | None = None
    planned_epochs: int | None = None
    started: float | None = None  # config.json's mtime: the run began
    finished: float | None = None  # result.json's mtime
    error: str | None = None
    traceback: str | None = None

    @property
    def epoch_seconds(self) -> list[float]:
        return [float(m["epoch_seconds"]) for m in self.epochs]

    @property
    def wall_seconds(self) -> float | None:
        return self.finished - self.started if self.started and self.finished else None


def run_label(axes: dict) -> str:
    method = {"simclr": "SimCLR"}.get(str(axes.get("method")), str(axes.get("method")))
    prior = str(axes.get("prior", "none"))
    gps = prior != "none"
    label = f"{'GPS-' if gps else ''}{method} {axes.get('aug')}"
    return label + (" (prior: strong-DA run)" if prior.startswith("run:") else f" (prior: {prior})" if gps else "")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_runs(sweep_dir: Path) -> list[RunProgress]:
    """Every planned run of the sweep, in plan order, with what its folder holds so far."""
    manifest = _read_json(sweep_dir / "sweep.json")
    if not manifest:
        return []
    runs = []
    for entry in manifest.get("runs", []):
        folder = sweep_dir / entry["run_id"]
        status = _read_json(folder / "status.json") or {}
        config = _read_json(folder / "config.json") or {}
        epochs = []
        try:
            for line in (folder / "metrics.jsonl").read_text().splitlines():
                if line.strip():
                    epochs.append(json.loads(line))
        except (OSError, ValueError):
            pass
        result = _read_json(folder / "result.json")
        run = RunProgress(
            entry["run_id"],
            run_label(entry["axes"]),
            entry["axes"],
            status.get("state", "new"),
            epochs,
            result,
            config.get("epochs"),
            error=status.get("error"),
            traceback=status.get("traceback"),
        )
        if (folder / "config.json").is_file():
            run.started = (folder / "config.json").stat().st_mtime
        if result is not None:
            run.finished = (folder / "result.json").stat().st_mtime
        runs.append(run)
    return runs


def steady_epoch_seconds(runs: list[RunProgress]) -> float | None:
    """Median seconds of the epochs after each run's first (compilation, cuDNN autotuning)."""
    later = [s for run in runs for s in run.epoch_seconds[1:]]
    return statistics.median(later) if later else None


# ================================================================================ projection
def project_remaining(runs: list[RunProgress], planned_epochs: int) -> float | None:
    """Seconds the sweep still needs, from what its runs measured (estimates where nothing is yet);
    None before any run has two epochs."""
    s = steady_epoch_seconds(runs)
    if s is None:
        return None
    done = [r for r in runs if r.result is not None and r.wall_seconds is not None]
    # a finished run's seconds outside its steady epochs: setup, compile (first epoch's excess), evaluations
    # `done` holds runs with a result and wall seconds: mypy narrows neither a property nor an item of a list
    outside = [cast(float, r.wall_seconds) - s * len(r.epochs) for r in done]
    per_run_outside = statistics.mean(outside) if outside else None
    evals = [cast(dict, r.result)["eval_seconds"] for r in done if cast(dict, r.result).get("eval_seconds") is not None]
    final_eval = statistics.mean(evals) if evals else EVAL_S
    points = planned_epochs // max(1, planned_epochs // CURVE_POINTS)
    remaining = 0.0
    for run in runs:
        if run.result is not None or run.state == "failed":
            continue
        if run.epochs or run.started:  # under way
            left = planned_epochs - len(run.epochs)
            online_left = max(0, points - sum("val_knn_acc" in m for m in run.epochs))
            remaining += left * s + final_eval + online_left * ONLINE_EVAL_S
        else:
            outside_est = (
                per_run_outside if per_run_outside is not None else (RUN_SETUP_S + EVAL_S + points * ONLINE_EVAL_S)
            )
            gps = GPS_SETUP_S if str(run.axes.get("prior", "none")) != "none" else 0.0
            remaining += planned_epochs * s + outside_est + gps
    return remaining


# ================================================================================ extrapolation
def extrapolate(run: RunProgress, epochs: int = 200) -> dict | None:
    """The seconds of a run of `epochs` epochs from this one's measured epochs:
    epochs x steady + first epoch's excess + evaluation + the rest of the run's wall time."""
    seconds = run.epoch_seconds
    if len(seconds) < 2:
        return None
    steady = statistics.median(seconds[1:])
    first_excess = seconds[0] - steady
    eval_s = (run.result or {}).get("eval_seconds")
    wall = run.wall_seconds
    other = wall - sum(seconds) - eval_s if wall is not None and eval_s is not None else None
    total = epochs * steady + first_excess + (eval_s or 0.0) + (other or 0.0)
    batch = (run.result or {}).get("images_per_s")
    terms = [(first_excess, "first epoch's excess over the median: compile, cuDNN autotuning")]
    terms.append(
        (eval_s, "evaluation: result.json eval_seconds")
        if eval_s is not None
        else (0.0, "evaluation not measured: the run did not finish")
    )
    if other is not None:
        terms.append((other, "the rest of the run's wall time: data, model, prior, online val kNN, checkpoints"))
    formula = f"{epochs} x {steady:.3f} s (median epoch after the first, of {len(seconds) - 1})" + "".join(
        f" {'-' if value < 0 else '+'} {abs(value):.1f} s ({why})" for value, why in terms
    )
    formula += f" = {total:.0f} s = {total / 60:.2f} min"
    return {
        "epochs": epochs,
        "steady_epoch_seconds": steady,
        "first_epoch_excess_seconds": first_excess,
        "eval_seconds": eval_s,
        "other_seconds": other,
        "total_seconds": total,
        "complete": other is not None,
        "measured_epochs": len(seconds),
        "run_images_per_s": batch,
        "target_seconds": TARGETS["run_200_epochs_s"],
        "meets_target": total < TARGETS["run_200_epochs_s"],
        "formula": formula,
    }


# ================================================================================ the summary
def _fmt(value, spec: str = ".4f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def paper_numbers() -> dict[tuple[str, bool], float]:
    """The paper's linear-probe accuracies (percent) of SimCLR on CIFAR-10 without an lr: (aug, gps)."""
    import csv

    numbers: dict[tuple[str, bool], float] = {}
    path = REPO / "results" / "reference" / "paper.csv"
    try:
        rows = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    except OSError:
        return numbers
    for row in csv.DictReader(rows):
        if (row["dataset"], row["method"], row["metric"], row["lr"]) == ("cifar10", "simclr", "linear_acc", ""):
            numbers[(row["aug"], row["gps"] == "True")] = float(row["value"])
    return numbers


def collect_summary(out: Path, work: Path) -> dict:
    """Everything measured so far, from the files alone."""
    steps = _read_json(work / "steps.json") or {}
    perf = _read_json(out / "perf.json")
    phases = _read_json(out / "perf-phases.json")
    runs = read_runs(work / "results" / SWEEP_NAME)
    precision = _read_json(out / "precision.json")
    strong = next((r for r in runs if r.axes.get("aug") == "strong" and r.axes.get("prior") == "none"), None)
    summary = {
        "environment": steps.get("environment"),
        "steps": steps.get("steps", {}),
        "plan": steps.get("plan"),
        "perf": perf if perf else ({"partial": True, **phases} if phases else None),
        "runs": [
            {
                "label": r.label,
                "run_id": r.run_id,
                "state": r.state,
                "epochs_done": len(r.epochs),
                "epochs_planned": r.planned_epochs,
                "steady_epoch_seconds": steady_epoch_seconds([r]),
                "wall_seconds": r.wall_seconds,
                "metrics": r.epochs,
                "result": r.result,
                "error": r.error,
                "traceback": r.traceback,
            }
            for r in runs
        ],
        "extrapolated_200_epochs": extrapolate(strong) if strong else None,
        "extrapolated_200_epochs_each_run": {r.label: extrapolate(r) for r in runs},
        "precision": precision,
        "paper_linear_acc": {f"{aug}{' gps' if gps else ''}": v for (aug, gps), v in paper_numbers().items()},
    }
    return summary


def format_summary(summary: dict, out: Path) -> str:
    lines = ["", "=" * 100, "gpu-check summary"]
    env = summary.get("environment") or {}
    if env:
        lines.append(
            f"device: {env.get('device_name')} | torch {env.get('torch')} | python {env.get('python')} | "
            f"{env.get('cpu_count')} CPUs | host {env.get('host')}"
        )
    plan = summary.get("plan") or {}
    if plan:
        lines.append("plan: " + ", ".join(f"{k} {v}" for k, v in plan.items()))
    steps = summary.get("steps") or {}
    if steps:
        lines.append(f"{'step':<11}{'outcome':<34}{'seconds':>9}  limit")
        for name, step in steps.items():
            lines.append(
                f"{name:<11}{step.get('outcome', '?'):<34}{_fmt(step.get('seconds'), '.0f'):>9}  "
                f"{_fmt(step.get('limit'), '.0f')}" + (f"  ({step['note']})" if step.get("note") else "")
            )
    lines += _perf_lines(summary.get("perf"))
    lines += _run_lines(summary)
    lines += _precision_lines(summary.get("precision"))
    files = sorted(p.name for p in out.iterdir() if p.is_file()) if out.is_dir() else []
    lines.append(
        f"files in {out} ({len(files)} of at most {OUT_FILE_LIMIT} a device call brings back): " + ", ".join(files)
    )
    if len(files) > OUT_FILE_LIMIT:
        lines.append(f"WARNING: more than {OUT_FILE_LIMIT} files: a device call brings back only {OUT_FILE_LIMIT}")
    lines.append("=" * 100)
    return "\n".join(lines)


def _perf_lines(perf: dict | None) -> list[str]:
    lines = ["", "-- 1. gpsbench perf --quick (torch.compile on)"]
    if not perf:
        return lines + ["   nothing measured (not run, or cut off before its first phase ended)"]
    if perf.get("partial"):
        lines.append("   CUT OFF: the phases measured before it stopped (perf-phases.json):")
    figures = perf.get("figures_images_per_s") or perf.get("step", {}).get("figures") or {}
    setup = perf.get("setup") or perf.get("step", {}).get("setup") or {}
    if setup:
        lines.append(
            f"   {setup.get('backbone')} {setup.get('method')} {setup.get('aug')} DA, batch "
            f"{setup.get('batch_size')}, {setup.get('train_images')} images, precision "
            f"{setup.get('precision')}, compile {setup.get('compile')} (graphs "
            f"{setup.get('compiled_graphs')}, graph breaks {setup.get('graph_breaks')}), DataLoader "
            f"workers {setup.get('dataloader_workers')}"
        )
    if figures:
        lines.append("   views/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in figures.items()))
        ratios = perf.get("ratios") or {
            "pipeline_vs_ceiling": figures["pipeline"] / figures["ceiling"] if figures.get("ceiling") else None,
            "pipeline_vs_dataloader": (
                figures["pipeline"] / figures["dataloader_train"] if figures.get("dataloader_train") else None
            ),
        }
        for name, value in ratios.items():
            target = TARGETS.get(name)
            verdict = (
                ""
                if target is None or value is None
                else (f"  (H200 target >= {target:g}: {'met' if value >= target else 'NOT met'})")
            )
            lines.append(f"   {name:<30}{_fmt(value, '.3g')}{verdict}")
    syncs = perf.get("pipeline_host_syncs", perf.get("step", {}).get("host_syncs"))
    if syncs is not None:
        lines.append(
            "   host syncs per pipeline step: "
            + ("none" if not syncs else "; ".join(f"{n} x {where}" for where, n in syncs.items()))
        )
    knn = perf.get("knn")
    if knn:
        lines.append(
            "   knn: "
            + ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in knn.items() if k != "embedding"
            )
        )
    registry = perf.get("registry")
    if registry:
        lines.append(
            f"   registry: plan {registry.get('plan_seconds', 0):.2f} s, states "
            f"{registry.get('states_seconds', 0):.2f} s, table {registry.get('table_seconds', 0):.2f} s"
        )
    if perf.get("phase_seconds"):
        lines.append("   seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in perf["phase_seconds"].items()))
    return lines


def _run_lines(summary: dict) -> list[str]:
    runs = summary.get("runs") or []
    lines = ["", "-- 2. the paper's claim: sweeps/gpu-check.yaml (CIFAR-10, SimCLR, batch and sizes in the plan)"]
    if not runs:
        return lines + ["   no sweep folder (not run, or cut off before it planned)"]
    paper = summary.get("paper_linear_acc") or {}
    lines.append(
        f"   {'run':<40}{'state':<9}{'epochs':>7}{'knn':>8}{'linear':>8}{'paper':>7}{'s/epoch':>9}"
        f"{'wall s':>8}  val kNN curve"
    )
    by_label: dict[str, Any] = {}  # linear accuracies from the summary's JSON
    for run in runs:
        result = run.get("result") or {}
        key = f"{run['label'].split()[1]}{' gps' if run['label'].startswith('GPS') else ''}"
        by_label[key] = result.get("linear_acc")
        curve = " ".join(f"{m['epoch']}:{m['val_knn_acc']:.3f}" for m in run["metrics"] if "val_knn_acc" in m)
        lines.append(
            f"   {run['label']:<40}{run['state']:<9}"
            f"{run['epochs_done']:>3}/{_fmt(run['epochs_planned'], 'd', '?'):<3}"
            f"{_fmt(result.get('knn_acc'), '.2%'):>8}{_fmt(result.get('linear_acc'), '.2%'):>8}"
            f"{_fmt(paper.get(key), '.1f'):>7}{_fmt(run['steady_epoch_seconds'], '.2f'):>9}"
            f"{_fmt(run['wall_seconds'], '.0f'):>8}  {curve or '-'}"
        )
        if run.get("error"):
            lines.append(f"      error: {run['error']}")
            lines += [f"      | {line}" for line in (run.get("traceback") or "").strip().splitlines()[-6:]]
    if by_label.get("weak gps") is not None and by_label.get("weak") is not None:
        gain = 100 * (by_label["weak gps"] - by_label["weak"])
        paper_gain = (paper["weak gps"] - paper["weak"]) if "weak gps" in paper and "weak" in paper else None
        lines.append(
            f"   GPS gain with weak DA: {gain:+.2f} points linear probe (paper, at its full schedule: "
            f"{_fmt(paper_gain, '+.2f')})"
        )
    extrapolated = summary.get("extrapolated_200_epochs")
    lines.append("")
    lines.append("-- the 200-epoch strong-DA SimCLR run, extrapolated from the measured epochs (target < 7 min):")
    if extrapolated:
        lines.append(f"   {extrapolated['formula']}")
        verdict = "meets" if extrapolated["meets_target"] else "does NOT meet"
        lines.append(
            f"   {verdict} the 7-minute target"
            + ("" if extrapolated["complete"] else " (partial: the run did not finish)")
        )
    else:
        lines.append("   not enough measured epochs (two are needed)")
    return lines


def _precision_lines(precision: dict | None) -> list[str]:
    lines = ["", "-- 3. bf16 autocast vs fp32, the strong-DA run's first steps from the same seed"]
    if not precision:
        return lines + ["   not measured (not run, or cut off before its first fp32 step)"]
    lines.append(f"   {precision.get('note', '')}")
    rows = precision.get("steps") or []
    for row in rows:
        lines.append(
            f"   step {row['step']:>3}  lr {row['lr']:.3g}  bf16 {_fmt(row.get('bf16'))}  "
            f"fp32 {_fmt(row.get('fp32'))}  rel diff {_fmt(row.get('rel_diff'), '.2e')}"
        )
    compared = [row["rel_diff"] for row in rows if row.get("rel_diff") is not None]
    if compared:
        worst = max(compared)
        lines.append(
            f"   max relative difference {worst:.2e} over {len(compared)} step(s): "
            f"{'agree' if worst <= PRECISION_RTOL else 'DIFFER'} (tolerance {PRECISION_RTOL})"
        )
    return lines


def snapshot(out: Path, work: Path, quiet: bool = True) -> dict:
    """summary.json and runs.tar.gz (the sweep's folders without checkpoints) from the files as they are."""
    summary = collect_summary(out, work)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    sweep_dir = work / "results" / SWEEP_NAME
    if sweep_dir.is_dir():
        tmp = out / ".runs.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(sweep_dir.rglob("*")):
                relative = path.relative_to(sweep_dir)
                if path.is_file() and path.suffix != ".pt" and not any(p.startswith(".") for p in relative.parts):
                    tar.add(path, arcname=f"{SWEEP_NAME}/{relative}")
        os.replace(tmp, out / "runs.tar.gz")
    if not quiet:
        print(format_summary(summary, out), flush=True)
    return summary


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ================================================================================ running steps
@dataclass
class StepOutcome:
    outcome: str
    seconds: float
    limit: float | None
    rc: int | None = None
    note: str | None = None


class Child:
    """A step in its own process group, its output copied line by line with a prefix."""

    def __init__(self, name: str, cmd: list[str], env: dict):
        self.name = name
        print(f"[check] {name}: {' '.join(cmd)}", flush=True)
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._copy, daemon=True)
        self.reader.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None  # Popen with stdout=PIPE
        for line in self.proc.stdout:
            sys.stdout.write(f"[{self.name}] {line}")
            sys.stdout.flush()

    def stop(self, grace: float) -> None:
        """SIGINT to the group (a run saves `pending`, the sweep and perf exit), SIGKILL after `grace` s."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        self.reader.join(2)


def run_step(
    name: str,
    cmd: list[str],
    env: dict,
    limit: float,
    grace: float = 3.0,
    watch: Callable[[], str | None] | None = None,
    poll_s: float = 2.0,
) -> StepOutcome:
    """Run `cmd` until it ends, its time limit passes, or `watch()` returns a reason to stop it."""
    started = time.time()
    if limit <= 0:
        return StepOutcome("skipped: no time left", 0.0, limit)
    child = Child(name, cmd, env)
    reason = None
    while child.proc.poll() is None:
        if time.time() - started > limit:
            reason = f"cut off by its time limit ({limit:.0f} s)"
        elif watch is not None:
            reason = watch()
        if reason:
            print(f"[check] {name}: {reason}: stopping it", flush=True)
            child.stop(grace)
            break
        time.sleep(poll_s)
    child.proc.wait()
    child.reader.join(5)
    seconds = time.time() - started
    rc = child.proc.returncode
    if reason:
        return StepOutcome("cut off" if reason.startswith("cut off") else "stopped early", seconds, limit, rc, reason)
    return StepOutcome("done" if rc == 0 else f"failed (exit code {rc})", seconds, limit, rc)


class SweepWatch:
    """Polled while the sweep runs: refreshes the snapshot when a run's epochs change, and answers a
    reason to stop once the measured epochs project an end past the deadline."""

    def __init__(
        self, sweep_dir: Path, epochs: int, deadline: float, budget: float, out: Path, work: Path, on_behind: str
    ):
        self.sweep_dir, self.epochs, self.deadline, self.budget = sweep_dir, epochs, deadline, budget
        self.out, self.work, self.on_behind = out, work, on_behind
        self.seen: dict[str, tuple] = {}  # run_id -> (state, epochs) last seen
        self.warned = False

    def __call__(self) -> str | None:
        runs = read_runs(self.sweep_dir)
        changed = [r for r in runs if self.seen.get(r.run_id) != (r.state, len(r.epochs))]
        if not changed:
            return None
        self.seen.update({r.run_id: (r.state, len(r.epochs)) for r in changed})
        snapshot(self.out, self.work)
        for run in changed:
            if run.epochs:
                last = run.epochs[-1]
                print(
                    f"[check] sweep: {run.label}: epoch {last['epoch']}/{self.epochs} "
                    f"{last['epoch_seconds']:.2f} s, loss {last['loss']:.4f}"
                    + (f", val kNN {last['val_knn_acc']:.3f}" if "val_knn_acc" in last else "")
                    + (f"; {run.state}" if run.state != "running" else ""),
                    flush=True,
                )
        remaining = project_remaining(runs, self.epochs)
        if remaining is None:
            return None
        now = time.time()
        late = now + remaining - self.deadline
        if late <= BEHIND_SLACK * self.budget:
            return None
        s = steady_epoch_seconds(runs)
        assert s is not None  # project_remaining gave a figure, so the runs have steady epochs
        fits = choose_epochs(self.budget, s)
        message = (
            f"falling behind: {remaining:.0f} s still needed at {s:.2f} s per epoch, "
            f"{self.deadline - now:.0f} s left; {fits} epochs would fit this budget (--epochs {fits})"
        )
        if self.on_behind == "stop":
            return message
        if not self.warned:
            print(f"[check] sweep: {message}; going on (--on-behind continue)", flush=True)
            self.warned = True
        return None


def find_data_path(given: str | None) -> Path | None:
    if given:
        return Path(given).resolve()
    return next((p.resolve() for p in ARCHIVE_PLACES if p.is_file()), None)


def environment(device: str) -> dict:
    import platform
    import socket

    import torch

    name = (
        torch.cuda.get_device_name(0)
        if device.startswith("cuda") and torch.cuda.is_available()
        else (f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)")
    )
    return {
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "host": socket.gethostname(),
    }


def cmd_run(argv: list[str]) -> int:
    args = parse_args(argv)
    t0 = float(os.environ.get("GPU_CHECK_T0") or time.time())
    deadline = t0 + args.budget
    out = Path(args.out or os.environ.get("OUT") or DEFAULT_OUT).resolve()
    work = Path(args.work or DEFAULT_WORK).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    data_path = find_data_path(args.data_path)
    if data_path is None or not data_path.is_file():
        print(
            f"gpu-check: error: no CIFAR-10 archive ({data_path or ' or '.join(map(str, ARCHIVE_PLACES))}): "
            f"run gpu/assemble.sh first, or give --data-path",
            file=sys.stderr,
        )
        return 2
    env_info = environment(args.device)
    if args.device.startswith("cuda") and not env_info["cuda_available"]:
        print(
            f"gpu-check: error: --device {args.device} but torch {env_info['torch']} sees no CUDA device; "
            f"the CPU dry run is --device cpu",
            file=sys.stderr,
        )
        return 2
    sizes = args.sizes
    data_dir = work / "data"
    for name in OUT_FILES:  # a rerun here must not report an earlier run's files (on a device $OUT starts empty)
        (out / name).unlink(missing_ok=True)
    if not args.keep_runs:  # timings of runs reused from an earlier invocation would mean nothing
        shutil.rmtree(work / "results" / SWEEP_NAME, ignore_errors=True)
    (work / "steps.json").unlink(missing_ok=True)
    env = {
        **os.environ,
        "GPSBENCH_DATA": str(data_dir),
        "GPSBENCH_RESULTS": str(work / "results"),
        "WANDB_MODE": "disabled",
        "WANDB_SILENT": "true",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    record: dict[str, Any] = {
        "environment": env_info,
        "steps": {},
        "plan": {
            "budget_s": args.budget,
            "device": args.device,
            "batch_size": sizes.batch_size,
            "subset": sizes.subset,
            "backbone": sizes.backbone,
            "sweep_compile": sizes.compile,
            "data_path": str(data_path),
        },
    }

    def left() -> float:
        return deadline - time.time()

    def save(name: str | None = None, outcome: StepOutcome | None = None) -> None:
        if name is not None:
            assert outcome is not None  # a step is saved by name with its outcome
            record["steps"][name] = dataclasses.asdict(outcome)
        _atomic_write(work / "steps.json", json.dumps(record, indent=2) + "\n")
        snapshot(out, work)

    print(
        f"[check] {env_info['device_name']}, torch {env_info['torch']}, {env_info['cpu_count']} CPUs; "
        f"budget {args.budget:.0f} s ({left():.0f} s left); out {out}; work {work}",
        flush=True,
    )
    save()
    me = [sys.executable, str(Path(__file__).resolve())]
    later_min = (
        (SWEEP_MIN_S if "sweep" in args.steps else 0)
        + (PRECISION_MIN_S if "precision" in args.steps else 0)
        + SUMMARY_RESERVE_S
    )
    # 1. perf
    if "perf" in args.steps:
        limit = min(PERF_MAX_S, left() - later_min)
        save(
            "perf",
            run_step(
                "perf",
                me
                + ["perf-phases", "--partial", str(out / "perf-phases.json"), "--"]
                + perf_args(args.device, sizes, data_path, data_dir, out),
                env,
                limit,
            ),
        )
    # 2. sweep
    if "sweep" in args.steps:
        limit = left() - (PRECISION_MAX_S if "precision" in args.steps else 0) - SUMMARY_RESERVE_S
        epochs, basis = sizes.epochs, "given"
        if epochs is None:
            report = _read_json(out / "perf.json") or _read_json(out / "perf-phases.json") or {}
            measured = epoch_seconds_from_perf(report)
            epoch_s = measured if measured is not None else EPOCH_S_DESIGN
            cold = measured is None  # perf did not compile the step: the first run compiles from scratch
            epochs = choose_epochs(limit, epoch_s, cold=cold)
            basis = (
                f"{epoch_s:.2f} s per epoch "
                + (
                    "from perf's pipeline figure"
                    if measured is not None
                    else "(DESIGN.md's estimate: perf gave no pipeline figure)"
                )
                + f", x{SAFETY} safety, {fixed_seconds(epochs, cold=cold):.0f} s estimated outside "
                f"epochs, {limit:.0f} s for the sweep"
            )
        record["plan"].update(epochs=epochs, epochs_basis=basis)
        print(f"[check] sweep: {epochs} epochs ({basis})", flush=True)
        overrides = sweep_overrides(args.device, sizes, epochs, data_path, data_dir, args.sets)
        cmd = [
            sys.executable,
            "-m",
            "benchmark.cli",
            "sweep",
            str(SWEEP_FILE),
            "--executor",
            "debug",
            "--results-dir",
            str(work / "results"),
        ] + [x for o in overrides for x in ("--set", o)]
        watch = SweepWatch(work / "results" / SWEEP_NAME, epochs, time.time() + limit, limit, out, work, args.on_behind)
        save("sweep", run_step("sweep", cmd, env, limit, SWEEP_GRACE_S, watch=watch))
    # 3. precision
    if "precision" in args.steps:
        limit = min(PRECISION_MAX_S, left() - SUMMARY_RESERVE_S)
        epochs = record["plan"].get("epochs") or sizes.epochs or 30
        overrides = sweep_overrides(args.device, sizes, epochs, data_path, data_dir, args.sets)
        cmd = (
            me
            + ["precision", "--steps", str(sizes.precision_steps), "--json", str(out / "precision.json"), "--"]
            + overrides
        )
        save("precision", run_step("precision", cmd, env, limit))
    record["total_seconds"] = time.time() - t0
    _atomic_write(work / "steps.json", json.dumps(record, indent=2) + "\n")
    snapshot(out, work, quiet=False)
    failed = [n for n, s in record["steps"].items() if s["outcome"] != "done"]
    return 1 if failed else 0


# ================================================================================ perf, phase by phase
def cmd_perf_phases(argv: list[str]) -> int:
    """`gpsbench perf` with each phase's figures printed and written to --partial as soon as measured,
    so a perf cut off by its time limit still reports its finished phases."""
    parser = argparse.ArgumentParser(prog="gpu/check.py perf-phases")
    parser.add_argument("--partial", required=True)
    parser.add_argument("perf", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    perf = args.perf[1:] if args.perf[:1] == ["--"] else args.perf
    partial = Path(args.partial)
    found: dict = {}

    def record(phase: str, value, seconds: float) -> None:
        if dataclasses.is_dataclass(value):
            # a phase's figures are an instance; is_dataclass's narrowing also admits a dataclass itself
            value = {k: v for k, v in dataclasses.asdict(cast(Any, value)).items() if k != "profile_table"}
        found[phase] = value
        found.setdefault("phase_seconds", {})[phase] = seconds
        _atomic_write(partial, json.dumps(found, indent=2, default=str) + "\n")
        print(
            f"gpu-check: perf phase {phase} measured in {seconds:.0f} s: {json.dumps(value, default=str)[:600]}",
            flush=True,
        )

    def wrap(module, name: str, phase: str) -> None:
        original = getattr(module, name, None)
        if original is None:
            print(f"gpu-check: warning: {module.__name__}.{name} not found: perf runs without phase reports")
            return

        def wrapped(*a, **kw):
            started = time.perf_counter()
            value = original(*a, **kw)
            record(phase, value, time.perf_counter() - started)
            return value

        setattr(module, name, wrapped)

    import benchmark.perf.knn as knn
    import benchmark.perf.registry as registry
    import benchmark.perf.step as step
    from benchmark.cli import main

    wrap(step, "step_figures", "step")  # run_perf imports these names when it runs: the wrappers are seen
    wrap(knn, "knn_figures", "knn")
    wrap(registry, "registry_seconds", "registry")
    return main(perf)


# ================================================================================ bf16 vs fp32
def strong_config(overrides: list[str]):
    """The strong-DA SimCLR cell of sweeps/gpu-check.yaml with the check's overrides."""
    from benchmark.sweep.plan import expand
    from benchmark.sweep.spec import load_sweep

    plan = expand(load_sweep(SWEEP_FILE), overrides)
    return next(c.config for c in plan.cells if c.axes.get("aug") == "strong" and c.depends_on is None)


def cmd_precision(argv: list[str]) -> int:
    """The first steps of the strong-DA run, bf16 autocast then fp32 (TF32 off), from the same seed."""
    parser = argparse.ArgumentParser(prog="gpu/check.py precision")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", required=True)
    parser.add_argument("overrides", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    overrides = args.overrides[1:] if args.overrides[:1] == ["--"] else args.overrides

    import torch

    from benchmark.data import load_run_data
    from benchmark.optim import lr_at
    from benchmark.train import PairStep, build_parts, select_device

    config = dataclasses.replace(strong_config(overrides), compile=False)
    device = select_device(config.device)
    if device.type == "cuda":  # fp32 means fp32: no TF32 convolutions or matmuls (the default for cuDNN)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    data = load_run_data(config)
    report = {
        "note": f"{config.method} {config.aug} DA, {config.backbone}, batch {config.batch_size}, "
        f"{len(data.pretrain)} images, seed {config.seed}, {device}, eager, TF32 off, the "
        f"lr schedule of a {config.epochs}-epoch run",
        "config_run_id": config.run_id,
        "steps": [],
    }
    losses: dict[str, list[float]] = {}
    for precision in ("bf16", "fp32"):
        parts = build_parts(dataclasses.replace(config, precision=precision), data, device)
        step = PairStep(parts)
        n, steps = len(parts.images), parts.steps_per_epoch
        total = steps * config.epochs
        order = torch.randperm(n, generator=parts.generator, device=device)
        losses[precision] = []
        started = time.perf_counter()
        for i in range(min(args.steps, steps)):
            lr = lr_at(
                i, total, parts.optim["warmup_epochs"] * steps, parts.optim["lr"], parts.optim["warmup_start_lr"]
            )
            loss = float(step(parts.anchors(order, i), lr, (i + 1) / total))
            losses[precision].append(loss)
            row = {"step": i + 1, "lr": lr, **{p: losses[p][i] for p in losses if i < len(losses[p])}}
            if "fp32" in row and "bf16" in row:
                row["rel_diff"] = abs(row["bf16"] - row["fp32"]) / max(abs(row["fp32"]), 1e-12)
            if len(report["steps"]) <= i:
                report["steps"].append(row)
            else:
                report["steps"][i] = row
            report[f"{precision}_seconds"] = time.perf_counter() - started
            _atomic_write(Path(args.json), json.dumps(report, indent=2) + "\n")
            print(
                f"gpu-check: {precision} step {i + 1}: loss {loss:.6f}"
                + (f" (bf16 {row['bf16']:.6f}, rel diff {row['rel_diff']:.2e})" if "rel_diff" in row else ""),
                flush=True,
            )
        del step, parts
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


def cmd_summary(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gpu/check.py summary")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(DEFAULT_OUT))
    parser.add_argument("--work", default=str(DEFAULT_WORK))
    args = parser.parse_args(argv)
    snapshot(Path(args.out), Path(args.work), quiet=False)
    return 0


COMMANDS = {"run": cmd_run, "summary": cmd_summary, "perf-phases": cmd_perf_phases, "precision": cmd_precision}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    return COMMANDS[command](argv)


if __name__ == "__main__":
    sys.exit(main())
