"""The corruption matrix: each state file of a finished sweep (status.json, result.json, metrics.jsonl,
config.json of one run; the sweep's sweep.json) truncated, made invalid or emptied (and result.json
made `{}`), against `gpsbench status`, `table` and `sweep`. No command crashes; the damaged run is
reported `corrupt` with the file and the reason; the next sweep redoes or repairs it (never rewriting
a sound result.json); the other run is untouched."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.rundir import RunDir
from benchmark.sweep.plan import expand
from benchmark.sweep.run_views import JobProbe, run_state
from benchmark.sweep.spec import load_sweep

FILES = ("status.json", "result.json", "metrics.jsonl", "config.json", "sweep.json")
DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],
    "invalid": lambda data: b"\x00\xffnot {json\n",
    "empty": lambda data: b"",
    "{}": lambda data: b"{}",
}
CELLS = [(file, damage) for file in FILES for damage in DAMAGE if damage != "{}" or file == "result.json"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A finished sweep of two runs (debug executor: in this process)."""
    root = tmp_path_factory.mktemp("pristine")
    path = root / "sweep.yaml"
    path.write_text(
        textwrap.dedent("""
        name: s
        grid: {seed: [0, 1]}
        fixed: {dataset: digits, batch_size: 128, epochs: 2, checkpoint_every: 1, progress: false,
                method_args: {proj_hidden_dim: 64, proj_output_dim: 16}}
        wandb: {mode: disabled}
    """)
    )
    assert main(["sweep", str(path), "--executor", "debug", "--results-dir", str(root / "r")]) == 0
    return path, root / "r", [cell.run_id for cell in expand(load_sweep(path)).cells]


def damaged_copy(finished, tmp_path: Path, file: str, damage: str) -> tuple[Path, RunDir, RunDir]:
    path, results, (damaged_id, other_id) = finished
    shutil.copytree(results, tmp_path / "r")
    sweep = tmp_path / "r" / "s"
    target = sweep / file if file == "sweep.json" else sweep / damaged_id / file
    target.write_bytes(DAMAGE[damage](target.read_bytes()))
    return sweep, RunDir(sweep / damaged_id), RunDir(sweep / other_id)


def files_of(run: RunDir) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.path.iterdir() if p.is_file()}


@pytest.mark.parametrize("file, damage", CELLS, ids=[f"{f}-{d}" for f, d in CELLS])
def test_status_reports_the_damaged_run_and_lists_the_others(finished, tmp_path, file, damage, capsys):
    sweep, damaged, other = damaged_copy(finished, tmp_path, file, damage)
    assert main(["status", str(sweep)]) == 0
    out, err = capsys.readouterr()
    rows = {run.path.name: line for run in (damaged, other) for line in out.splitlines() if run.path.name in line}
    assert " done " in rows[other.path.name]
    if file == "sweep.json":
        assert "sweep.json" in err and " done " in rows[damaged.path.name]
    else:
        assert " corrupt " in rows[damaged.path.name] and file in rows[damaged.path.name]
        assert out.splitlines()[-1] == "2 runs: 1 done, 1 corrupt"


@pytest.mark.parametrize("file, damage", CELLS, ids=[f"{f}-{d}" for f, d in CELLS])
def test_table_tabulates_the_sound_results(finished, tmp_path, file, damage, capsys):
    sweep, damaged, other = damaged_copy(finished, tmp_path, file, damage)
    assert main(["table", str(sweep)]) == 0
    out = capsys.readouterr().out
    if file == "result.json":
        assert "runs: 1 done, 0 failed, 1 corrupt, 0 missing of 2" in out
    else:  # the results are sound: both count (status shows what else is damaged)
        assert "runs: 2 done, 0 failed, 0 missing of 2" in out


@pytest.mark.parametrize("file, damage", CELLS, ids=[f"{f}-{d}" for f, d in CELLS])
def test_the_next_sweep_redoes_the_damaged_run_alone(finished, tmp_path, file, damage, capsys):
    sweep, damaged, other = damaged_copy(finished, tmp_path, file, damage)
    path = finished[0]
    untouched = files_of(other)
    result = damaged.result.read_bytes()
    assert main(["sweep", str(path), "--executor", "debug", "--results-dir", str(tmp_path / "r")]) == 0
    assert files_of(other) == untouched
    state = run_state(damaged.path, JobProbe())
    assert state.state == "done" and state.problem is None
    if file == "result.json":  # evaluated again from its last checkpoint (the final one: no epoch retrained)
        assert damaged.read_status()["attempt"] == 2 and [m["epoch"] for m in damaged.read_metrics()] == [1, 2]
    else:  # its result was sound: kept byte for byte, the damaged companion repaired
        assert damaged.result.read_bytes() == result
        if file != "sweep.json":
            assert damaged.read_status()["note"].startswith("repaired")
