"""`gpsbench perf`: the suite measured side by side with its alternatives, in one process.

- step.py:     training step images/s (ceiling, pipeline, data path, sampler, DataLoader), host syncs
- datapath.py: the data path against the DataLoader per method recipe
- knn.py:      neighbour-table build seconds, exact and approximate, with recall
- profile.py:  where the pipeline step's time goes (torch.profiler)
- bookkeeping.py: seconds to plan a 10,000-cell sweep and to collect its 10,000 runs into a table
- precision.py: bf16 autocast against fp32 on the run's first steps (--precision-check N)
- phases.py:   each phase's figures as soon as they are measured (--phases FILE, or a callback)
One JSON report (results/perf/<host>-<device>.json) holds every figure, the ratios, the setup and
the versions.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from benchmark.config import RunConfig
    from benchmark.perf.phases import PhaseCallback
    from benchmark.perf.step import StepMeasures


@dataclass(frozen=True)
class PerfSizes:
    """How much each part measures; --quick keeps the whole run under 2 minutes on 2 CPU cores."""

    exact_images: int = 50_000
    approx_images: int = 1_000_000
    registry_seeds: int = 250  # 5 x 2 x 4 x 250 = 10,000 cells

    @classmethod
    def for_run(cls, quick: bool, exact_images: int | None, approx_images: int | None) -> "PerfSizes":
        base = cls(exact_images=20_000, approx_images=100_000) if quick else cls()
        return cls(
            exact_images if exact_images is not None else base.exact_images,
            approx_images if approx_images is not None else base.approx_images,
            base.registry_seeds,
        )


def run_perf(
    config: RunConfig,
    quick: bool,
    workers: int | None,
    out: str | None,
    results_dir: Path,
    sizes: PerfSizes = PerfSizes(),
    precision_steps: int = 0,
    on_phase: PhaseCallback | None = None,
) -> dict:
    """Every measure, one phase after another, into one JSON report. `precision_steps` > 0 adds the
    bf16-vs-fp32 check of the run's first steps (precision.py); `on_phase(name, figures, seconds)`
    sees each phase's figures as soon as they are measured (phases.py)."""
    from benchmark.assembly import select_device
    from benchmark.data import load_run_data
    from benchmark.perf.bookkeeping import registry_seconds
    from benchmark.perf.datapath import recipe_figures
    from benchmark.perf.knn import knn_figures
    from benchmark.perf.precision import precision_check
    from benchmark.perf.step import step_figures

    started = time.perf_counter()
    device = select_device(config.device)
    data = load_run_data(config)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    phases = {"data": time.perf_counter() - started}

    def timed(phase: str, measure, *args):
        begun = time.perf_counter()
        value = measure(*args)
        phases[phase] = time.perf_counter() - begun
        if on_phase is not None:
            on_phase(phase, value, phases[phase])
        return value

    step = timed("step", step_figures, config, data, device, quick, workers)
    precision = timed("precision", precision_check, config, data, device, precision_steps) if precision_steps else None
    recipes = timed("recipes", recipe_figures, config, data, device, quick, workers)
    knn = timed("knn", knn_figures, data.pretrain.images, device, sizes.exact_images, sizes.approx_images)
    registry = timed("registry", registry_seconds, sizes.registry_seeds)
    report = _report(step, knn, registry, quick, device)
    report["data_pipeline_vs_dataloader_per_recipe"] = recipes
    if precision is not None:
        report["precision"] = precision
    report["phase_seconds"] = {**phases, "total": time.perf_counter() - started}
    path = Path(out) if out else results_dir / "perf" / f"{socket.gethostname()}-{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    profile_path = path.with_name(path.stem + "-profile.txt")
    profile_path.write_text(f"torch.profiler, {report['device']}, pipeline step\n{step.profile_table}\n")
    print(format_report(report))
    print(f"written to {path} (operator profile: {profile_path})")
    return report


def _report(step: StepMeasures, knn: dict, registry: dict, quick: bool, device: torch.device) -> dict:
    figures = step.figures
    return {
        "figures_images_per_s": figures,
        "ratios": {
            "pipeline_vs_ceiling": figures["pipeline"] / figures["ceiling"],
            "data_pipeline_vs_dataloader": figures["data_pipeline"] / figures["dataloader"],
            "pipeline_vs_dataloader": figures["pipeline"] / figures["dataloader_train"],
            # seconds per step in the sampler / seconds per training step
            "sampler_share": figures["pipeline"] / figures["sampler"],
        },
        "pipeline_profile_shares": step.profile_shares,
        "pipeline_host_syncs": step.host_syncs,
        "knn": knn,
        "registry": registry,
        "setup": {**step.setup, "quick": quick},
        "device": _device_name(device),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "versions": _versions(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _versions() -> dict:
    import faiss
    import pandas

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "pandas": pandas.__version__,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def format_report(report: dict) -> str:
    from benchmark.perf.datapath import format_recipes

    s, knn, registry = report["setup"], report["knn"], report["registry"]
    lines = [
        f"gpsbench perf on {report['device']}: {s['backbone']} {s['method']}, {s['aug']} aug, batch {s['batch_size']}"
        f" per view, {s['image_size']} px, prior {s['prior']} k={s['k']}, DataLoader workers {s['dataloader_workers']}",
        f"{'measure':<30}{'images/s':>12}",
    ]
    lines += [f"{name:<30}{value:>12.0f}" for name, value in report["figures_images_per_s"].items()]
    lines += [f"{name:<30}{value:>12.4g}" for name, value in report["ratios"].items()]
    lines += format_recipes(report.get("data_pipeline_vs_dataloader_per_recipe", []))
    lines += [
        f"pipeline step, {clock} time: " + ", ".join(f"{scope} {share:.1%}" for scope, share in shares.items())
        for clock, shares in report["pipeline_profile_shares"].items()
    ]
    syncs = report["pipeline_host_syncs"]
    lines += [
        "host syncs per pipeline step: "
        + ("none" if not syncs else "; ".join(f"{n} x {where}" for where, n in syncs.items()))
    ]
    lines += [f"knn {name:<26}{value:>12.4g}" for name, value in knn.items() if isinstance(value, float)]
    lines += [
        f"registry {registry['cells']:,} cells/runs: plan {registry['plan_seconds']:.2f} s, states "
        f"{registry['states_seconds']:.2f} s, table {registry['table_seconds']:.2f} s"
    ]
    if "precision" in report:
        from benchmark.perf.precision import precision_lines

        lines += precision_lines(report["precision"])
    lines += ["seconds: " + ", ".join(f"{phase} {value:.0f}" for phase, value in report["phase_seconds"].items())]
    return "\n".join(lines)
