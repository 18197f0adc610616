"""How runs look in W&B, read back from real offline files: group = the cell without its seed, job
type = the sweep, tags = the sweep and the axes (none per tuning trial), a name with the prior, the
config with the axes at the top level, one W&B run per results folder, and the sweep's summary artifact."""

from __future__ import annotations

import glob
import subprocess
import sys
import textwrap

import pytest

from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.sweep.plan import expand
from benchmark.sweep.spec import load_sweep
from benchmark.sweep.summary import ARTIFACT_TYPE, JOB_TYPE, SUMMARY_DIR
from benchmark.tracking import wandb_run_id
from benchmark.train import RunInterrupted, train_run
from tests.wandb_records import artifacts, offline_runs, run_config, run_record

HEADS = "{proj_hidden_dim: 64, proj_output_dim: 16}"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline, its staging and cache folders in tmp_path (artifact files are staged there)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    return tmp_path


def test_sweep_groups_seeds_names_priors_and_logs_its_summary(offline, capsys):
    path = offline / "sweep.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: wbl
            grid:
              prior: [none, pixel]
              seed: [0, 1]
            fixed: {{dataset: digits, subset: 500, method: simclr, aug: weak, epochs: 1, batch_size: 128,
                     method_args: {HEADS}}}
            per: {{prior: {{pixel: {{k: 5}}}}}}
            """
        )
    )
    results = offline / "results"
    assert main(["sweep", str(path), "--executor", "debug", "--results-dir", str(results)]) == 0
    assert "W&B: wbl-results (" in capsys.readouterr().out
    sweep_dir = results / "wbl"
    cells = expand(load_sweep(path)).cells
    records = {}
    for cell in cells:
        [file] = offline_runs(sweep_dir / cell.run_id)
        run, config = run_record(file), run_config(file)
        records[(cell.axes["prior"], cell.axes["seed"])] = run
        assert run.run_id == wandb_run_id(sweep_dir / cell.run_id, cell.run_id)
        assert run.job_type == "wbl"
        assert list(run.tags) == ["wbl", f"prior={cell.axes['prior']}", f"seed={cell.axes['seed']}"]
        assert run.display_name == f"simclr-{cell.axes['prior']}-weak-digits-s{cell.axes['seed']}"
        assert {key: config[key] for key in ("prior", "seed", "method", "k", "run_id", "sweep")} == {
            "prior": cell.axes["prior"],
            "seed": cell.axes["seed"],
            "method": "simclr",
            "k": 5 if cell.axes["prior"] == "pixel" else 0,
            "run_id": cell.run_id,
            "sweep": "wbl",
        }
    groups = {key: run.run_group for key, run in records.items()}
    assert groups[("none", 0)] == groups[("none", 1)] and groups[("pixel", 0)] == groups[("pixel", 1)]
    assert groups[("none", 0)] != groups[("pixel", 0)]
    assert groups[("pixel", 0)].startswith("simclr-pixel-weak-digits-")
    assert len({run.display_name for run in records.values()}) == 4

    [summary] = offline_runs(sweep_dir / SUMMARY_DIR)
    assert run_record(summary).job_type == JOB_TYPE and list(run_record(summary).tags) == ["wbl"]
    [artifact] = artifacts(summary)
    assert (artifact.name, artifact.type) == ("wbl-results", ARTIFACT_TYPE)
    logged = {entry.path: entry.local_path for entry in artifact.manifest.contents}
    assert {"table-linear_acc.md", "table-linear_acc.csv", "bars-linear_acc.png", "losses.png"} <= set(logged)
    staged = open(logged["table-linear_acc.md"]).read()
    assert staged == (sweep_dir / "table-linear_acc.md").read_text() and "| SimCLR |" in staged

    # docs/wandb.md's upload command, as the shell expands it (`*` skips the dot folder, named on its own)
    paths = glob.glob(f"{sweep_dir}/*/wandb/offline-run-*") + glob.glob(
        f"{sweep_dir}/{SUMMARY_DIR}/wandb/offline-run-*"
    )
    listed = subprocess.run(
        [sys.executable, "-m", "wandb", "sync", "--dry-run", *paths], capture_output=True, text=True, timeout=600
    )
    assert listed.returncode == 0, listed.stderr
    assert "Would sync 5 run(s)" in listed.stdout + listed.stderr


def test_tuning_trials_add_no_tag_per_trial(offline):
    path = offline / "tune.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: wbt
            fixed: {{dataset: digits, subset: 500, method: simclr, aug: weak, epochs: 1, batch_size: 128,
                     method_args: {HEADS}}}
            space: {{lr: {{type: float, low: 0.05, high: 5.0, log: true}}}}
            n_trials: 2
            evaluate_every: 1
            sampler: {{name: random, seed: 0}}
            pruner: {{name: none}}
            """
        )
    )
    assert main(["tune", str(path), "--executor", "debug", "--results-dir", str(offline / "r")]) == 0
    files = [file for run in sorted((offline / "r" / "wbt").iterdir()) for file in offline_runs(run)]
    assert len(files) == 2
    trials = sorted(run_config(file)["trial"] for file in files)
    assert trials == [0, 1]
    for file in files:
        run = run_record(file)
        assert list(run.tags) == ["wbt"] and run.job_type == "wbt"
        assert run.display_name == f"simclr-none-weak-digits-trial{run_config(file)['trial']}-s0"


def test_same_run_id_in_two_results_folders_is_two_wandb_runs(offline):
    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "subset": 500,
            "epochs": 2,
            "batch_size": 128,
            "progress": False,
            "wandb_mode": "offline",
            "method_args": {"proj_hidden_dim": 64, "proj_output_dim": 16},
        }
    )
    first, second = offline / "a" / config.run_id, offline / "b" / config.run_id
    polls = iter(range(1000))
    with pytest.raises(RunInterrupted):  # stopped in epoch 2, resumed below: the same W&B run goes on
        train_run(config, first, interrupt=lambda: next(polls) == 4)
    train_run(config, first, resume=True)
    train_run(config, second)
    ids = [run_record(file).run_id for file in offline_runs(first)]
    [other] = [run_record(file).run_id for file in offline_runs(second)]
    assert len(ids) == 2 and ids[0] == ids[1]  # the resumed attempt continues its folder's W&B run
    assert other != ids[0] and {other[:12], ids[0][:12]} == {config.run_id}
