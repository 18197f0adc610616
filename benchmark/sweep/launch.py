"""`gpsbench sweep`: validate the file, plan the runs, read their states, then show the plan
(--dry-run) or hand what is left to an executor. Nothing is submitted unless everything is valid."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from benchmark.errors import ConfigError
from benchmark.manifest import MANIFEST
from benchmark.results import sweep_table
from benchmark.rundir import atomic_write_json, read_json
from benchmark.runstate import LIVE, SWEEP_STATES, TO_RUN, RunState
from benchmark.sweep.executors import EXECUTORS, ExecutorOptions, Launch, Progress
from benchmark.sweep.job import RunJob
from benchmark.sweep.plan import Cell, Plan, expand
from benchmark.sweep.run_views import RunView, states
from benchmark.sweep.seeds import describe, grow
from benchmark.sweep.seeds_rule import SeedsUntil, check_grid
from benchmark.sweep.spec import load_sweep
from benchmark.sweep.summary import log_summary, summary_mode
from benchmark.tracking import Labels


@dataclass(frozen=True)
class SweepRequest:
    file: Path
    executor: str = "local"
    options: ExecutorOptions = field(default_factory=ExecutorOptions)
    results_root: Path = Path("results")
    overrides: tuple[str, ...] = ()
    dry_run: bool = False
    retry_failed: bool = False
    seeds_until_width: float | None = None  # overrides the sweep file's seeds_until.width (or sets one)


@dataclass
class Selection:
    """Which planned runs to start, to wait for, or to leave alone."""

    to_run: list[Cell]
    watch: list[str]
    states: dict[str, RunView]
    retry_failed: bool = False

    def count(self) -> Counter:
        return Counter(state.state for state in self.states.values())


def select(plan: Plan, sweep_dir: Path, retry_failed: bool) -> Selection:
    found = states(sweep_dir, [cell.run_id for cell in plan.cells])
    rerun = TO_RUN + ((RunState.FAILED,) if retry_failed else ())
    to_run = [cell for cell in plan.cells if found[cell.run_id].state in rerun]
    watch = [run_id for run_id, state in found.items() if state.state in LIVE]
    return Selection(to_run, watch, found, retry_failed)


def run_sweep(request: SweepRequest, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    os.environ.setdefault("WANDB_SILENT", "true")  # one line per run here; W&B's own output goes to run logs
    spec = load_sweep(request.file)
    rule = seeds_rule(spec, request.seeds_until_width)
    plan = expand(spec, request.overrides)
    executor = EXECUTORS.get(request.executor)(request.options, spec.resources)  # checks its own settings
    sweep_dir = Path(request.results_root) / spec.name
    if rule is not None:
        growth = grow(spec, request.overrides, sweep_dir, rule)
        plan = growth.plan
    selection = select(plan, sweep_dir, request.retry_failed)
    print(describe_plan(plan, selection, sweep_dir, probe=request.dry_run), file=out)
    if rule is not None:
        print(describe(growth, rule), file=out)
    if request.dry_run:
        print(list_runs(plan, selection), file=out)
        return 0
    write_manifest(plan, sweep_dir, request)
    jobs = [make_job(cell, spec, sweep_dir, request.results_root) for cell in selection.to_run]
    if not jobs and not selection.watch:
        counts = selection.count()
        print(
            f"nothing to run: {', '.join(f'{counts[s]} {s}' for s in SWEEP_STATES if counts[s])}"
            + (" (--retry-failed reruns failed runs)" if counts[RunState.FAILED] else ""),
            file=out,
        )
    else:
        labels = {cell.run_id: cell.label for cell in plan.cells}
        progress = Progress(len(plan.cells), selection.count()[RunState.DONE], labels, stream=out)
        try:
            with stop_on_sigterm():
                executor.run(Launch(jobs, sweep_dir, spec.resources, selection.watch), progress)
        except KeyboardInterrupt:
            print(
                "\ninterrupted: run the same command again to go on (done runs are kept, the others "
                "resume from their checkpoints)",
                file=out,
            )
            raise
        if not executor.waits:
            print(f"submitted {len(jobs)} run(s); follow them with: gpsbench status {sweep_dir}", file=out)
            return 0
    return finish_sweep(request, spec, plan, rule, out)


def finish_sweep(request: SweepRequest, spec, plan, rule: SeedsUntil | None, out: TextIO) -> int:
    """After the runs: the table, the W&B summary, what is left to resume, and another round of seeds."""
    sweep_dir = Path(request.results_root) / spec.name
    print(sweep_table(sweep_dir), file=out)
    modes = {spec.wandb.apply(cell.config).wandb_mode or "disabled" for cell in plan.cells}
    log_summary(sweep_dir, spec.wandb, spec.name, summary_mode(modes), out)
    final = Counter(state.state for state in states(sweep_dir, [cell.run_id for cell in plan.cells]).values())
    unfinished = {state: final[state] for state in TO_RUN if final[state]}
    if unfinished:
        print(
            f"not finished: {', '.join(f'{n} {state}' for state, n in unfinished.items())}; run the same "
            f"command again to resume them",
            file=out,
        )
    if rule is not None and not (final[RunState.FAILED] or unfinished):
        after = grow(spec, request.overrides, sweep_dir, rule)
        if after.added:
            print("another round: seeds to add (seeds_until)", file=out)
            return run_sweep(request, out)
        print(describe(after, rule), file=out)
    return 1 if final[RunState.FAILED] or unfinished else 0


def seeds_rule(spec, width: float | None) -> SeedsUntil | None:
    """The sweep file's seeds_until, with --seeds-until-width's width; None when neither asks."""
    if width is None and (spec.seeds_until is None or spec.seeds_until.width is None):
        return None
    rule = dataclasses.replace(spec.seeds_until or SeedsUntil(), **({"width": width} if width is not None else {}))
    rule.validate()
    problems = check_grid(rule, spec.grid)
    if problems:
        raise ConfigError(f"sweep {spec.name!r}: " + "; ".join(problems))
    return rule


class Stopped(KeyboardInterrupt):
    """A plain kill (SIGTERM) of `gpsbench sweep` stops its runs the way Ctrl-C does."""

    signum = signal.SIGTERM


@contextlib.contextmanager
def stop_on_sigterm():
    def stop(signum, frame):
        raise Stopped()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def make_job(cell: Cell, spec, sweep_dir: Path, results_root: Path) -> RunJob:
    return RunJob(
        spec.wandb.apply(cell.config),
        sweep_dir / cell.run_id,
        Path(results_root),
        Labels(spec.name, cell.axes),
        depends_on=cell.depends_on,
        max_attempts=spec.resources.max_attempts,
    )


def manifest(plan: Plan, file: Path | None) -> dict:
    """sweep.json: the planned runs, which `status` and `table` read (runs never started count as missing)."""
    return {
        "name": plan.spec.name,
        "file": str(file) if file else None,
        "axes": plan.spec.axes,
        "written": time.time(),
        "runs": [
            {"run_id": c.run_id, "axes": {k: str(v) for k, v in c.axes.items()}, "depends_on": c.depends_on}
            for c in plan.cells
        ],
    }


def write_manifest(plan: Plan, sweep_dir: Path, request: SweepRequest) -> None:
    path = sweep_dir / MANIFEST
    if path.is_dir() and not path.is_symlink():  # an empty folder in its place goes; one that holds files stays
        with contextlib.suppress(OSError):
            path.rmdir()
    atomic_write_json(path, manifest(plan, request.file))


def describe_plan(plan: Plan, selection: Selection, sweep_dir: Path, probe: bool = False) -> str:
    """The plan in a few lines; `probe`: time a few training steps of each kind of run that no done run
    has measured (a dry run's estimate for a data set seen for the first time)."""
    spec, res = plan.spec, plan.spec.resources
    shape = " x ".join(f"{len(values)} {axis}" for axis, values in spec.grid.items())
    counts = selection.count()
    to_run = len(selection.to_run)
    lines = [
        f"sweep {spec.name} -> {sweep_dir}: {plan.grid_size} cells ({shape}), {plan.excluded} excluded, "
        f"{plan.collapsed} collapsed into identical runs: {len(plan.cells)} runs",
        "  "
        + ", ".join(f"{counts[s]} {s}" for s in SWEEP_STATES if counts[s])
        + f"; {to_run} to run"
        + (
            " (failed ones are kept: --retry-failed reruns them)"
            if counts[RunState.FAILED] and not selection.retry_failed
            else ""
        ),
        f"  requested: {to_run} runs x {res.timeout_min} min x {res.gpus} GPU = "
        f"{to_run * res.timeout_min * res.gpus / 60:.1f} GPU-hours (time limits, the upper bound)"
        if res.gpus
        else f"  requested: {to_run} CPU runs x {res.timeout_min} min = {to_run * res.timeout_min / 60:.1f} "
        f"run-hours (time limits, the upper bound; no GPU)",
    ]
    estimate = estimate_seconds(selection.to_run, sweep_dir, selection)
    if estimate is not None:
        seconds, covered = estimate
        lines.append(
            f"  estimate from measured runs: {duration(seconds)} for the {covered} of "
            f"{to_run} runs to do that match a done run (same dataset, subset, size, method, "
            f"backbone, batch)"
        )
    if probe:
        lines += probe_lines(selection.to_run, measured_speeds(sweep_dir, selection))
    return "\n".join(lines)


def probe_lines(cells: list[Cell], measured: dict[tuple, list]) -> list[str]:
    from benchmark.sweep.probe import TIMED_STEPS, probe_estimate

    unmeasured = [cell.config for cell in cells if _speed_key(dataclasses.asdict(cell.config)) not in measured]
    found = probe_estimate(unmeasured, lambda config: _speed_key(dataclasses.asdict(config))) if unmeasured else None
    if found is None:
        return []
    seconds, covered, problems = found
    lines = [f"  no probe for {problem}" for problem in problems]
    if covered:
        lines.insert(
            0,
            f"  estimate from a timed probe ({TIMED_STEPS} training steps of each kind of run on this machine, "
            f"training only: no prior, no evaluation): {duration(seconds)} for the {covered} of {len(cells)} runs "
            f"to do that no done run has measured",
        )
    return lines


def duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} run-hours"


def _speed_key(values: dict) -> tuple:
    return tuple(str(values.get(k)) for k in ("dataset", "subset", "image_size", "method", "backbone", "batch_size"))


def measured_speeds(sweep_dir: Path, selection: Selection) -> dict[tuple, list[tuple[float, float]]]:
    """Seconds per epoch and per evaluation of the done runs, by kind of run (`_speed_key`)."""
    measured: dict[tuple, list[tuple[float, float]]] = {}
    for run_id, state in selection.states.items():
        if state.state != RunState.DONE:
            continue
        if not (sweep_dir / run_id / "config.json").is_file():
            continue  # done runs' files are sound (the registry checked them); an old run may lack this one
        result = read_json(sweep_dir / run_id / "result.json")
        config = read_json(sweep_dir / run_id / "config.json")
        if result.get("epochs"):
            measured.setdefault(_speed_key(config), []).append(
                (result["train_seconds"] / result["epochs"], result.get("eval_seconds") or 0.0)
            )
    return measured


def estimate_seconds(cells: list[Cell], sweep_dir: Path, selection: Selection) -> tuple[float, int] | None:
    """Seconds per epoch and per evaluation measured by done runs, applied to the runs still to do."""
    measured = measured_speeds(sweep_dir, selection)
    if not measured or not cells:
        return None
    total, covered = 0.0, 0
    for cell in cells:
        samples = measured.get(_speed_key(dataclasses.asdict(cell.config)))
        if samples:
            per_epoch = sum(s[0] for s in samples) / len(samples)
            evaluation = sum(s[1] for s in samples) / len(samples)
            total += per_epoch * cell.config.epochs + evaluation
            covered += 1
    return (total, covered) if covered else None


def list_runs(plan: Plan, selection: Selection, limit: int = 60) -> str:
    rows = [f"  {selection.states[c.run_id].state:<11} {c.run_id}  {c.label}" for c in plan.cells]
    more = f"\n  ... and {len(rows) - limit} more" if len(rows) > limit else ""
    return "\n".join(rows[:limit]) + more
