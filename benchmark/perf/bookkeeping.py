"""The bookkeeping cost of a large grid: planning a 10,000-cell sweep, reading the states of its
10,000 runs (what a re-launch or `gpsbench status` does) and collecting them into a table.

The grid is the paper's CIFAR-10 sweep (5 methods x 2 DA x 4 priors, one of them a `run:` selector)
with 250 seeds. Its runs are written as finished run directories (config.json, status.json,
result.json, a metrics.jsonl of 200 epochs, as `train` writes them) with seeded accuracies: the
timings depend on the number and size of the files, not on the accuracies. Imports are out of the
timings (a warm-up plan first), and the tree is written to memory (/dev/shm) where there is one: the
figures are the suite's reading and tabulating, with the files in the page cache, not the disk's speed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SEEDS = 250
GRID = {
    "method": ["simclr", "byol", "nnclr", "vicreg", "barlow"],
    "aug": ["weak", "strong"],
    "prior": ["none", "timm:resnet50", "run:method=simclr,aug=strong", "pixel"],
}
FIXED: dict[str, Any] = {"dataset": "cifar10", "backbone": "resnet18", "epochs": 200, "batch_size": 256, "k": 5}


def sweep_file(seeds: int = SEEDS) -> dict:
    """The raw sweep file: 5 x 2 x 4 x `seeds` cells (10,000 with the default)."""
    return {"name": "perf-registry", "grid": {**GRID, "seed": list(range(seeds))}, "fixed": dict(FIXED)}


def write_finished_runs(plan, sweep_dir: Path, seed: int = 0) -> None:
    """Every planned run as a finished run directory, and the sweep's manifest. Written without the
    fsync per file of a real run (atomic_write_json): a fixture, not a run."""
    from benchmark.manifest import MANIFEST
    from benchmark.rundir import RESULT_KEYS, RunDir, json_text
    from benchmark.runstate import RunState
    from benchmark.sweep.launch import manifest

    rng = np.random.default_rng(seed)
    epochs = range(1, FIXED["epochs"] + 1)
    metrics = "".join(
        json.dumps({"epoch": e, "loss": 5.0 / e, "lr": 0.3, "images_per_s": 50_000.0, "epoch_seconds": 2.0}) + "\n"
        for e in epochs
    )
    sweep_dir.mkdir(parents=True)
    (sweep_dir / MANIFEST).write_text(json_text(manifest(plan, None)))
    for cell, accuracy in zip(plan.cells, rng.uniform(0.6, 0.9, len(plan.cells))):
        config = cell.config
        run = RunDir(sweep_dir / cell.run_id)
        run.path.mkdir()
        result = {
            "run_id": cell.run_id,
            "method": config.method,
            "aug": config.aug,
            "dataset": config.dataset,
            "prior": config.prior,
            "seed": config.seed,
            "epochs": config.epochs,
            "k": config.k,
            "knn_acc": accuracy - 0.02,
            "knn200_acc": accuracy - 0.03,
            "linear_acc": accuracy,
            "val_knn_acc": accuracy - 0.02,
            "val_linear_acc": accuracy,
            "prior_nn_agreement": 0.5,
            "train_seconds": 400.0,
            "images_per_s": 50_000.0,
        }
        assert set(RESULT_KEYS) <= set(result)
        run.config.write_text(json_text(config.to_dict()))
        run.status.write_text(
            json_text(
                {"state": RunState.DONE, "attempt": 1, "error": None, "updated": time.time(), "run_id": cell.run_id}
            )
        )
        run.result.write_text(json_text(result))
        run.metrics.write_text(metrics)


def registry_seconds(seeds: int = SEEDS) -> dict:
    """Seconds to plan the grid, to read its runs' states, and to collect and tabulate its runs."""
    from benchmark.results import build_table, collect, to_markdown
    from benchmark.sweep.launch import select
    from benchmark.sweep.plan import expand
    from benchmark.sweep.spec import parse_sweep

    expand(parse_sweep(sweep_file(1)))  # imports and first-call caches out of the timing
    started = time.perf_counter()
    plan = expand(parse_sweep(sweep_file(seeds)))
    plan_seconds = time.perf_counter() - started
    cells = len(plan.cells)
    memory = Path("/dev/shm")  # the fixture in memory where possible: the suite's time, not the disk's
    scratch = str(memory) if memory.is_dir() and os.access(memory, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="gpsbench-perf-", dir=scratch) as tmp:
        sweep_dir = Path(tmp) / plan.spec.name
        write_finished_runs(plan, sweep_dir)
        started = time.perf_counter()
        selection = select(plan, sweep_dir, retry_failed=False)
        states_seconds = time.perf_counter() - started
        started = time.perf_counter()
        frame, counts = collect(sweep_dir)
        to_markdown(build_table(frame, counts))
        table_seconds = time.perf_counter() - started
    done = selection.count()["done"]
    if done != cells or len(frame) != cells:
        raise RuntimeError(f"registry benchmark: {done} runs read as done and {len(frame)} collected of {cells}")
    return {
        "cells": cells,
        "plan_seconds": plan_seconds,
        "states_seconds": states_seconds,
        "table_seconds": table_seconds,
    }
