"""A table of one plan: `table`, `status` and `results.load` count the runs sweep.json plans. Runs of
an earlier plan of the same sweep name are reported (how many, which keys differ) and shown on request
(--earlier), never pooled; a copy of a run folder, a link to one, or a planned folder holding another
run's files is reported and never counted twice."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from benchmark.cli import main
from benchmark.results import collect, load
from tests.test_results_frame import config_of, manifest, write_run

NOW = {"a00000000000": 0, "a00000000001": 1}  # run_id -> seed: the current plan, 2 epochs
THEN = {"b00000000000": 0, "b00000000001": 1, "b00000000002": 2}  # an earlier plan: 1 epoch, a third seed


def log(epochs: int) -> list[dict]:
    """metrics.jsonl of a finished run of `epochs` epochs."""
    return [{"epoch": epoch, "loss": 4.0 - epoch} for epoch in range(1, epochs + 1)]


def sweep_with_two_plans(tmp_path: Path) -> Path:
    sweep = tmp_path / "s"
    for runs, epochs, accuracy in ((NOW, 2, 0.9), (THEN, 1, 0.5)):
        for run_id, seed in runs.items():
            result = {"knn_acc": accuracy + seed / 100, "linear_acc": accuracy, "epochs": epochs}
            write_run(sweep, run_id, config_of("simclr", "none", seed, epochs=epochs), "done", result, log(epochs))
    manifest(sweep, [(run_id, {"seed": str(seed)}) for run_id, seed in NOW.items()])
    return sweep


def test_runs_of_an_earlier_plan_are_reported_with_the_keys_that_differ_and_not_counted(tmp_path):
    sweep = sweep_with_two_plans(tmp_path)
    frame = load(sweep)
    assert sorted(frame["run_id"]) == sorted(NOW) and frame.attrs["planned"] == 2
    (note,) = frame.attrs["notes"]
    assert note.startswith("3 runs of an earlier plan of this sweep (not in sweep.json; keys that differ:")
    assert "epochs 1 (this plan: 2)" in note and "seed 2 (this plan: 0, 1)" in note and "--earlier" in note
    everything = load(sweep, earlier=True)
    assert sorted(everything["run_id"]) == sorted([*NOW, *THEN])
    assert dict(zip(everything["run_id"], everything["plan"])) == {
        **{run_id: "current" for run_id in NOW},
        **{run_id: "earlier" for run_id in THEN},
    }
    frame, counts = collect(sweep, earlier=True)
    assert (counts["done"], counts["planned"]) == (2, 2)


def test_the_table_and_status_count_the_current_plan_and_show_the_earlier_on_request(tmp_path, capsys):
    sweep = sweep_with_two_plans(tmp_path)
    assert main(["table", str(sweep), "--metric", "knn_acc"]) == 0
    out, err = capsys.readouterr()
    assert "runs: 2 done, 0 failed, 0 missing of 2" in out and "(n=" not in out
    assert "90.50 ± 0.71" in out and "3 runs of an earlier plan" in err
    assert main(["table", str(sweep), "--metric", "knn_acc", "--earlier"]) == 0
    out = capsys.readouterr().out
    assert "plan=earlier" in out and "plan=current" in out and "runs: 2 done, 0 failed, 0 missing of 2" in out
    assert main(["status", str(sweep)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "2 runs: 2 done" and not any(run_id in out for run_id in THEN)
    assert main(["status", str(sweep), "--earlier"]) == 0
    out = capsys.readouterr().out
    assert all(run_id in out for run_id in THEN) and "[earlier plan]" in out
    assert out.splitlines()[-1] == "2 runs: 2 done (and 3 of an earlier plan, shown above)"


def test_a_copy_a_link_and_another_runs_files_in_a_planned_folder_are_never_counted_twice(tmp_path, capsys):
    sweep = tmp_path / "s"
    for run_id, seed in NOW.items():
        result = {"knn_acc": 0.9, "linear_acc": 0.9}
        write_run(sweep, run_id, config_of("simclr", "none", seed), "done", result, log(4))
    first = sweep / "a00000000000"
    shutil.copytree(first, sweep / "copy-of-a-run")
    os.symlink(first, sweep / "link-to-a-run")
    shutil.copytree(first, sweep / "a00000000002")  # a seed never trained, holding seed 0's files
    manifest(sweep, [(run_id, {"seed": str(seed)}) for run_id, seed in {**NOW, "a00000000002": 2}.items()])
    frame = load(sweep)
    assert sorted(frame["run_id"]) == ["a00000000000", "a00000000001", "a00000000002"]
    state = dict(zip(frame["run_id"], frame["state"]))
    assert state["a00000000002"] == "corrupt"
    notes = " | ".join(frame.attrs["notes"])
    assert "link-to-a-run is a link to a00000000000: counted once" in notes
    assert "copy-of-a-run: a folder not named by its run a00000000000 (a copy?): not counted" in notes
    assert main(["table", str(sweep), "--metric", "knn_acc"]) == 0
    assert "runs: 2 done, 0 failed, 1 corrupt, 0 missing of 3" in capsys.readouterr().out
    assert main(["status", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "names run a00000000000, not a00000000002" in out or "is the result of run a00000000000" in out
    assert out.splitlines()[-1] == "3 runs: 2 done, 1 corrupt"


def test_without_a_plan_two_folders_of_one_run_count_once(tmp_path):
    folder = tmp_path / "runs"
    write_run(folder, "a00000000000", config_of("simclr", "none", 0), "done", {"knn_acc": 0.9, "linear_acc": 0.9})
    shutil.copytree(folder / "a00000000000", folder / "my-copy")
    frame = load(folder)
    assert list(frame["run_id"]) == ["a00000000000"]
    assert frame.attrs["notes"] == ["my-copy holds run a00000000000 too (as a00000000000 does): counted once"]
