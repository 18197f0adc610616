"""The fault suite's figures as tables, for a reviewer who wants to see outcomes rather than green dots.

    python tests/faults/report.py corruption   # the corruption matrix: file x damage x command, each outcome
    python tests/faults/report.py concurrent   # two sweeps at once on one folder, three times
    python tests/faults/report.py disk-full    # a run on a full 64 MB tmpfs, then resumed once room is freed

Each runs the real commands, as the tests in test_corruption.py, test_concurrent_sweeps.py and
test_disk_full.py do; where a test asserts, this prints what it saw.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: benchmark and tests

from benchmark.cli import main  # noqa: E402
from benchmark.rundir import RunDir  # noqa: E402
from benchmark.sweep.plan import expand  # noqa: E402
from benchmark.sweep.run_views import JobProbe, run_state  # noqa: E402
from benchmark.sweep.spec import load_sweep  # noqa: E402


def quiet(argv: list[str]) -> tuple[int, str, str]:
    """Run a gpsbench command in this process; its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception as crash:  # what the matrix must never show
            return -1, out.getvalue(), f"CRASH {type(crash).__name__}: {crash}"
    return code, out.getvalue(), err.getvalue()


def corruption(root: Path) -> None:
    from tests.faults.test_corruption import CELLS, SWEEP, TUNE, apply

    path = root / "sweep.yaml"
    path.write_text(textwrap.dedent(SWEEP))
    assert quiet(["sweep", str(path), "--executor", "debug", "--results-dir", str(root / "pristine")])[0] == 0
    damaged_id, other_id = (cell.run_id for cell in expand(load_sweep(path)).cells)
    print("| file | damage | `gpsbench status` | `gpsbench table` | next `gpsbench sweep` | other run |")
    print("| --- | --- | --- | --- | --- | --- |")
    for cell in CELLS:
        results = root / cell.id.replace("/", "_").replace(" ", "_")
        shutil.copytree(root / "pristine", results)
        sweep = results / "s"
        apply(cell, sweep, damaged_id, other_id)
        other = RunDir(sweep / other_id)
        before = {p.name: p.read_bytes() for p in other.path.iterdir() if p.is_file()}
        code, out, err = quiet(["status", str(sweep)])
        row = next((line for line in out.splitlines() if damaged_id in line), "")
        said = " ".join(row.split()[1:3]) if row else "-"
        status_cell = f"exit {code}: {said}" + ("; warns on sweep.json" if "sweep.json" in err else "")
        code, out, err = quiet(["table", str(sweep)])
        counts = re.search(r"runs: [^|_]*? of \d+", out)
        counts = counts.group(0) if counts else err.strip()[:80]
        table_cell = f"exit {code}: {counts}"
        damaged = RunDir(sweep / damaged_id)
        result_before = damaged.result.read_bytes() if damaged.result.is_file() else None
        code, out, err = quiet(["sweep", str(path), "--executor", "debug", "--results-dir", str(results)])
        state = run_state(damaged.path, JobProbe())
        status = damaged.status_or_none() or {}
        if result_before is not None and damaged.result.is_file() and damaged.result.read_bytes() == result_before:
            kept = "result kept"
        else:
            kept = "re-evaluated" if damaged.result.is_file() else "no result"
        epochs = [m["epoch"] for m in damaged.read_metrics()]
        leftovers = [p.name for p in damaged.path.glob(".*.tmp")]
        sweep_cell = (
            f"exit {code}: {state.state}, attempt {status.get('attempt')}, {kept}, epochs {epochs}"
            + (f"; {status['note']}" if status.get("note") else "")
            + (f"; {state.message}" if state.problem else "")
            + (f"; temporary files left {leftovers}" if leftovers else "")
        )
        untouched = before == {p.name: p.read_bytes() for p in other.path.iterdir() if p.is_file()}
        print(
            f"| {cell.file} | {cell.damage} | {status_cell} | {table_cell} | {sweep_cell} | "
            f"{'untouched' if untouched else 'CHANGED'} |"
        )
    journal_rows(root, TUNE)


def journal_rows(root: Path, tune: str) -> None:
    """The study's journal: a torn last line, and a damaged line before it, against `tune --export`."""
    path = root / "tune.yaml"
    path.write_text(textwrap.dedent(tune))
    assert quiet(["tune", str(path), "--executor", "debug", "--results-dir", str(root / "study")])[0] == 0
    journal = root / "study" / "t" / "journal.log"
    whole = journal.read_bytes()
    lines = whole.split(b"\n")
    damages = {
        "torn last line": whole + b'{"op_code":5,"worker_id":"a',
        "damaged line 2 (torn, then appended to)": b"\n".join([lines[0], b'{"op_code":5,"wor' + lines[1], *lines[2:]]),
    }
    print("\n| journal.log | `gpsbench tune --export` | journal afterwards |")
    print("| --- | --- | --- |")
    for damage, data in damages.items():
        journal.write_bytes(data)
        code, out, err = quiet(
            ["tune", str(path), "--export", str(root / "best.yaml"), "--results-dir", str(root / "study")]
        )
        said = err.strip().splitlines()[-1][:160] if err.strip() else ""
        after = (
            "as before the damage"
            if journal.read_bytes() == whole
            else ("left as it was" if journal.read_bytes() == data else "changed")
        )
        print(f"| {damage} | exit {code}: {said} | {after} |")
    journal.write_bytes(whole)


def concurrent(root: Path, trials: int) -> None:
    from tests.faults.test_concurrent_sweeps import SWEEP, runs_of, start_sweep

    print("| trial | exits | runs | attempts | epochs per run | result.json rewritten |")
    print("| --- | --- | --- | --- | --- | --- |")
    for trial in range(1, trials + 1):
        folder = root / f"trial{trial}"
        folder.mkdir()
        path = folder / "sweep.yaml"
        path.write_text(textwrap.dedent(SWEEP.format(name="twice", seeds=[0, 1, 2, 3], epochs=3)))
        runs = runs_of(path, folder / "r")
        sweeps = [start_sweep(path, folder / "r", folder / f"{i}.log", parallel=2) for i in range(2)]
        first_seen: dict[Path, int] = {}
        while any(sweep.poll() is None for sweep in sweeps):
            for run in runs:
                if run.result.is_file() and run.path not in first_seen:
                    first_seen[run.path] = run.result.stat().st_mtime_ns
            time.sleep(0.2)
        attempts = [run.read_status()["attempt"] for run in runs]
        epochs = {tuple(m["epoch"] for m in run.read_metrics()) for run in runs}
        rewritten = sum(run.result.stat().st_mtime_ns != first_seen.get(run.path) for run in runs)
        print(
            f"| {trial} | {[s.returncode for s in sweeps]} | {len(runs)} | {attempts} | "
            f"{sorted(epochs)} | {rewritten} of {len(runs)} |"
        )


def disk_full(root: Path) -> None:
    from tests.faults.test_disk_full import gpsbench

    disk = root / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        sys.exit(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        reference = gpsbench(["--epochs", "1", "--out", str(root / "ref")], root)
        checkpoint = (root / "ref" / "checkpoint.pt").stat().st_size
        filler = disk / "filler"
        with open(filler, "wb") as handle:  # room for one checkpoint and a half
            handle.write(b"\0" * (shutil.disk_usage(disk).free - checkpoint * 3 // 2 - (64 << 10)))
        run = RunDir(disk / "run")
        full = gpsbench(["--epochs", "4", "--out", str(run.path)], root)
        print(
            f"$ gpsbench train --epochs 4 --out {run.path}   (reference exit {reference.returncode}, "
            f"checkpoint {checkpoint / 1e6:.1f} MB, {shutil.disk_usage(disk).free / 1e6:.1f} MB free)"
        )
        print(f"exit {full.returncode}; stderr's last line:\n  {full.stderr.strip().splitlines()[-1]}")
        print(f"traceback printed: {'Traceback' in full.stderr}")
        show_run(run)
        code, out, err = quiet(["export", str(root / "ref"), "--out", str(disk / "backbone.safetensors")])
        print(f"\n$ gpsbench export {root / 'ref'} --out {disk / 'backbone.safetensors'}   (the same full disk)")
        print(f"exit {code}; stderr: {err.strip()[-300:]}; traceback printed: {'Traceback' in err}")
        print(f"  left on the disk: {sorted(p.name for p in disk.iterdir() if p.name != 'filler')}")
        filler.unlink()
        resumed = gpsbench(["--epochs", "4", "--resume", "--out", str(run.path)], root)
        print(f"\n$ rm filler; gpsbench train --epochs 4 --resume --out {run.path}")
        print(
            f"exit {resumed.returncode}; " + "; ".join(line for line in resumed.stderr.splitlines() if "resum" in line)
        )
        show_run(run)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def show_run(run: RunDir) -> None:
    status = run.read_status()
    log = run.metrics_log()
    checkpoint = run.load_checkpoint()
    print(f"  status.json: state {status['state']}, attempt {status['attempt']}, error {status.get('error')!r}")
    print(f"  metrics.jsonl: epochs {log.epochs}, torn tail {log.torn_tail}, bad lines {log.bad_lines}")
    print(
        f"  checkpoint.pt: epoch {checkpoint['epoch'] if checkpoint else None}; result.json: "
        f"{run.result.is_file()}; temporary files left: {[p.name for p in run.path.glob('.*.tmp')]}"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", choices=("corruption", "concurrent", "disk-full"))
    parser.add_argument("--trials", type=int, default=3, help="concurrent: how many times")
    args = parser.parse_args()
    reports = {
        "corruption": corruption,
        "concurrent": lambda root: concurrent(root, args.trials),
        "disk-full": disk_full,
    }
    with tempfile.TemporaryDirectory(prefix="gpsbench-faults-") as folder:
        reports[args.report](Path(folder))


if __name__ == "__main__":
    cli()
