"""The corruption matrix: each state file of a finished sweep (status.json, result.json, metrics.jsonl,
config.json of one run; the sweep's sweep.json) truncated, made invalid, emptied or replaced by a
directory (and result.json made `{}` or given a non-numeric accuracy), a checkpoint write cut by a kill
(its temporary file left), and a run folder that holds a copy of the other run, against `gpsbench
status`, `table` and `sweep`. No command crashes; the damaged run is reported with the file and the
reason; the next sweep redoes or repairs it (never rewriting a sound result.json, never writing over
another run's files); the other run is untouched. An optuna journal with a torn last line, or a damaged
line before it, is the study's damage: the tail is cut off, the line reported."""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
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


def _non_numeric(path: Path) -> None:
    result = json.loads(path.read_text())
    path.write_text(json.dumps({**result, "linear_acc": "abc"}))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _killed_mid_checkpoint(run: Path) -> None:
    """What a kill -9 while checkpoint.pt was being written leaves: the run `running` with its process
    gone, no result yet, the temporary file of the write."""
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "running", "pid": 2**22 + 1, "pid_start": "1"}))
    (run / "result.json").unlink()
    (run / ".checkpoint.pt.k2j4h5g6.tmp").write_bytes((run / "checkpoint.pt").read_bytes()[:4096])


def _copy_of_the_other(run: Path, other: Path) -> None:
    shutil.rmtree(run)
    shutil.copytree(other, run)


@dataclass(frozen=True)
class Cell:
    """One damage: the file (or `folder`), how it is damaged, and what the commands must say."""

    file: str
    damage: str
    status_says: str  # the damaged run's state in `gpsbench status`
    result_counts: bool  # the damaged run's result still counts in the table
    after_sweep: str  # "kept": the result kept byte for byte; "re-evaluated"; "refused": left as it is

    @property
    def id(self) -> str:
        return f"{self.file}-{self.damage}"


CELLS = [
    *(
        Cell(file, damage, "corrupt", file != "result.json", "re-evaluated" if file == "result.json" else "kept")
        for file in FILES
        for damage in DAMAGE
        if damage != "{}" or file == "result.json"
    ),
    Cell("result.json", "non-numeric", "corrupt", False, "re-evaluated"),
    *(
        Cell(file, "a directory", "corrupt", file != "result.json", "re-evaluated" if file == "result.json" else "kept")
        for file in FILES
    ),
    Cell("checkpoint.pt", "killed mid-write", "stale", False, "re-evaluated"),
    Cell("folder", "a copy of the other run", "corrupt", False, "refused"),
]


def apply(cell: Cell, sweep: Path, damaged_id: str, other_id: str) -> None:
    """Damage the run `damaged_id` of `sweep` (or its sweep.json) as the cell says."""
    run = sweep / damaged_id
    target = sweep / cell.file if cell.file == "sweep.json" else run / cell.file
    if cell.damage in DAMAGE:
        target.write_bytes(DAMAGE[cell.damage](target.read_bytes()))
    elif cell.damage == "non-numeric":
        _non_numeric(target)
    elif cell.damage == "a directory":
        _directory(target)
    elif cell.damage == "killed mid-write":
        _killed_mid_checkpoint(run)
    else:
        _copy_of_the_other(run, sweep / other_id)


SWEEP = """
    name: s
    grid: {seed: [0, 1]}
    fixed: {dataset: digits, batch_size: 128, epochs: 2, checkpoint_every: 1, progress: false,
            method_args: {proj_hidden_dim: 64, proj_output_dim: 16}}
    wandb: {mode: disabled}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A finished sweep of two runs (debug executor: in this process)."""
    root = tmp_path_factory.mktemp("pristine")
    path = root / "sweep.yaml"
    path.write_text(textwrap.dedent(SWEEP))
    assert main(["sweep", str(path), "--executor", "debug", "--results-dir", str(root / "r")]) == 0
    return path, root / "r", [cell.run_id for cell in expand(load_sweep(path)).cells]


def damaged_copy(finished, tmp_path: Path, cell: Cell) -> tuple[Path, RunDir, RunDir]:
    path, results, (damaged_id, other_id) = finished
    shutil.copytree(results, tmp_path / "r")
    sweep = tmp_path / "r" / "s"
    apply(cell, sweep, damaged_id, other_id)
    return sweep, RunDir(sweep / damaged_id), RunDir(sweep / other_id)


def files_of(run: RunDir) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.path.iterdir() if p.is_file()}


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_status_reports_the_damaged_run_and_lists_the_others(finished, tmp_path, cell, capsys):
    sweep, damaged, other = damaged_copy(finished, tmp_path, cell)
    assert main(["status", str(sweep)]) == 0
    out, err = capsys.readouterr()
    rows = {run.path.name: line for run in (damaged, other) for line in out.splitlines() if run.path.name in line}
    assert " done " in rows[other.path.name]
    if cell.file == "sweep.json":
        assert "sweep.json" in err and " done " in rows[damaged.path.name]
    else:
        assert f" {cell.status_says} " in rows[damaged.path.name]
        assert cell.status_says != "corrupt" or (cell.file if cell.file != "folder" else "names run") in out
        assert out.splitlines()[-1] == f"2 runs: 1 done, 1 {cell.status_says}"


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_table_tabulates_the_sound_results(finished, tmp_path, cell, capsys):
    sweep, damaged, other = damaged_copy(finished, tmp_path, cell)
    assert main(["table", str(sweep)]) == 0
    out = capsys.readouterr().out
    if cell.result_counts:  # the results are sound: both count (status shows what else is damaged)
        assert "runs: 2 done, 0 failed, 0 missing of 2" in out
    elif cell.status_says == "corrupt":
        assert "runs: 1 done, 0 failed, 1 corrupt, 0 missing of 2" in out
    else:  # killed before its result: not done yet
        assert "runs: 1 done, 0 failed, 1 missing of 2" in out


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_the_next_sweep_redoes_the_damaged_run_alone(finished, tmp_path, cell, capsys):
    sweep, damaged, other = damaged_copy(finished, tmp_path, cell)
    path = finished[0]
    untouched = files_of(other)
    before = files_of(damaged)
    code = main(["sweep", str(path), "--executor", "debug", "--results-dir", str(tmp_path / "r")])
    assert files_of(other) == untouched
    state = run_state(damaged.path, JobProbe())
    if cell.after_sweep == "refused":  # another run's files: never written over, reported, the sweep unfinished
        assert code == 1 and files_of(damaged) == before
        assert state.state == "corrupt" and "names run" in state.message
        return
    assert code == 0
    assert state.state == "done" and state.problem is None
    assert not list(damaged.path.glob(".*.tmp"))  # a killed write's temporary file is gone
    if cell.after_sweep == "re-evaluated":  # evaluated again from its last checkpoint (the final one)
        assert damaged.read_status()["attempt"] == 2 and [m["epoch"] for m in damaged.read_metrics()] == [1, 2]
    else:  # its result was sound: kept byte for byte, the damaged companion repaired
        assert damaged.result.read_bytes() == before["result.json"][0]
        if cell.file != "sweep.json":
            assert damaged.read_status()["note"].startswith("repaired")


TUNE = """
    name: t
    fixed: {dataset: digits, subset: 300, batch_size: 64, method: simclr, epochs: 2, progress: false,
            backbone: small, method_args: {proj_hidden_dim: 64, proj_output_dim: 16}}
    space: {lr: {type: float, low: 0.1, high: 1.0}}
    n_trials: 1
    evaluate_every: 1
    pruner: {name: none}
    resources: {cpus: 1, timeout_min: 10}
    wandb: {mode: disabled}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    """A finished study of one trial, and its journal."""
    root = tmp_path_factory.mktemp("study")
    path = root / "tune.yaml"
    path.write_text(textwrap.dedent(TUNE))
    assert main(["tune", str(path), "--executor", "debug", "--results-dir", str(root / "r")]) == 0
    return path, root / "r" / "t" / "journal.log"


def test_a_torn_last_journal_line_is_cut_off_and_the_study_goes_on(study, tmp_path, capsys):
    path, journal = study
    shutil.copytree(journal.parent, tmp_path / "r" / "t")
    copy = tmp_path / "r" / "t" / "journal.log"
    whole = copy.read_bytes()
    copy.write_bytes(whole + b'{"op_code":5,"worker_id":"a')  # a kill in the middle of an append
    capsys.readouterr()
    assert main(["tune", str(path), "--export", str(tmp_path / "best.yaml"), "--results-dir", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    after = copy.read_bytes()  # (opening the study may append records of its own)
    assert "its last line was torn (27 bytes" in err and after.startswith(whole)
    assert all(isinstance(json.loads(line), dict) for line in after.splitlines())
    assert "lr" in (tmp_path / "best.yaml").read_text()


def test_a_damaged_journal_line_before_the_last_is_the_studys_one_line_error(study, tmp_path, capsys):
    path, journal = study
    shutil.copytree(journal.parent, tmp_path / "r" / "t")
    copy = tmp_path / "r" / "t" / "journal.log"
    lines = copy.read_bytes().split(b"\n")
    copy.write_bytes(b"\n".join([lines[0], b'{"op_code":5,"wor' + lines[1], *lines[2:]]))  # torn, then appended to
    before = copy.read_bytes()
    capsys.readouterr()
    assert main(["tune", str(path), "--export", str(tmp_path / "best.yaml"), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "journal.log: line 2 is not a journal record" in err[0]
    assert copy.read_bytes() == before
