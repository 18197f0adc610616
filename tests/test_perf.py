"""The perf fixtures measure what they claim: the registry grid is the paper's, every run is read."""

from __future__ import annotations

import json

from benchmark.perf.registry import registry_seconds, sweep_file, write_finished_runs
from benchmark.results import collect
from benchmark.sweep.launch import select
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import parse_sweep


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
