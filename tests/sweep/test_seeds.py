"""Seeds until an interval is narrow enough (benchmark/sweep/seeds.py): on a sweep folder whose done
runs hold chosen numbers, the seeds each round adds (cells, or twins with `compare`), the cap, the
checks of the sweep file, and one real sweep that goes round after round without rerunning a run."""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.errors import ConfigError
from benchmark.rundir import RESULT_KEYS, read_json
from benchmark.sweep.plan import expand
from benchmark.sweep.seeds import grow
from benchmark.sweep.seeds_rule import SeedsUntil
from benchmark.sweep.spec import load_sweep

T_975 = {2: 4.302652729749464, 3: 3.182446305284263}  # t quantiles at 2 and 3 degrees of freedom

SWEEP = """
name: grow
grid:
  prior: [none, pixel]
  seed: [0, 1]
fixed: {dataset: digits, backbone: small, epochs: 1}
per:
  prior: {pixel: {k: 5}}
"""


def sweep_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "grow.yaml"
    path.write_text(textwrap.dedent(SWEEP) + textwrap.dedent(extra))
    return path


def finish(sweep_dir: Path, spec, seed: int, accuracy: float, prior: str | None = None) -> None:
    """The run of (prior, seed) as a done run with this linear accuracy, in percent."""
    wide = expand(dataclasses.replace(spec, grid={**spec.grid, "seed": list(range(10))}))
    (cell,) = [c for c in wide.cells if c.axes.get("prior") == prior and c.axes["seed"] == seed]
    folder = sweep_dir / cell.run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cell.config.to_dict()))
    (folder / "status.json").write_text(json.dumps({"state": "done", "attempt": 1}))
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 1.0}) + "\n")
    named = {key: getattr(cell.config, key) for key in ("method", "aug", "dataset", "prior", "seed", "epochs")}
    result = {key: 0.5 for key in RESULT_KEYS} | named | {"run_id": cell.run_id, "linear_acc": accuracy / 100}
    (folder / "result.json").write_text(json.dumps(result))


def width(values: list[float]) -> float:
    n, mean = len(values), sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return 2 * T_975[n - 1] * std / math.sqrt(n)


def test_a_cell_gets_seeds_until_its_interval_is_narrow_enough(tmp_path):
    spec = load_sweep(sweep_file(tmp_path))
    rule = SeedsUntil(width=2.0, max_seeds=5)
    folder = tmp_path / "grow"
    first = grow(spec, (), folder, rule)
    assert len(first.plan.cells) == 4 and first.added == []  # nothing done: nothing to judge
    for seed, accuracy in enumerate([90.0, 91.0]):
        finish(folder, spec, seed, accuracy, "none")
    for seed in (0, 1):
        finish(folder, spec, seed, 95.0, "pixel")  # no spread: narrow enough at once
    second = grow(spec, (), folder, rule)
    assert second.added == ["prior=none: seed 2 (width 12.71 > 2 with 2 seeds)"] and second.settled == 1
    assert len(second.plan.cells) == 5
    finish(folder, spec, 2, 90.5, "none")
    assert width([90.0, 91.0, 90.5]) > 2.0
    third = grow(spec, (), folder, rule)
    assert third.added == [f"prior=none: seed 3 (width {width([90.0, 91.0, 90.5]):.2f} > 2 with 3 seeds)"]
    finish(folder, spec, 3, 90.5, "none")
    assert width([90.0, 91.0, 90.5, 90.5]) <= 2.0
    fourth = grow(spec, (), folder, rule)
    assert fourth.added == [] and fourth.settled == 2 and len(fourth.plan.cells) == 6
    capped = grow(spec, (), folder, SeedsUntil(width=0.1, max_seeds=4))
    assert capped.added == [] and capped.capped == 1  # still too wide, but at its 4 seeds


def test_a_pair_of_twins_gets_seeds_on_both_sides(tmp_path):
    spec = load_sweep(sweep_file(tmp_path))
    folder = tmp_path / "grow"
    for seed, (plain, gps) in enumerate([(90.0, 92.0), (91.0, 92.0)]):  # differences 2, 1
        finish(folder, spec, seed, plain, "none")
        finish(folder, spec, seed, gps, "pixel")
    growth = grow(spec, (), folder, SeedsUntil(width=2.0, compare="prior=none"))
    assert growth.added == [
        "prior=pixel: seed 2 (width 12.71 > 2 with 2 seeds)",
        "prior=none: seed 2 (width 12.71 > 2 with 2 seeds)",
    ]
    assert sorted(int(c.axes["seed"]) for c in growth.plan.cells) == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "extra, message",
    [
        ("seeds_until: {width: 0}", "seeds_until.width must be > 0"),
        ("seeds_until: {width: 1, compare: aug=weak}", "seeds_until.compare: 'aug' is not a grid axis"),
        ("seeds_until: {width: 1, compare: prior=imagenet}", "'imagenet' is not on axis prior"),
        ("seeds_until: {width: 1, max_seeds: 1}", "seeds_until.max_seeds must be >= 2"),
        ("seeds_until: {width: 1, widht: 2}", "unknown seeds_until key"),
    ],
)
def test_bad_seed_rules_are_refused_with_the_sweep_file(tmp_path, extra, message):
    with pytest.raises(ConfigError) as err:
        load_sweep(sweep_file(tmp_path, extra))
    assert message in str(err.value)


def test_seeds_need_a_seed_axis(tmp_path, capsys):
    path = tmp_path / "one.yaml"
    path.write_text("name: one\ngrid: {prior: [none]}\nfixed: {dataset: digits, epochs: 1}\n")
    assert main(["sweep", str(path), "--dry-run", "--seeds-until-width", "1", "--results-dir", str(tmp_path)]) == 2
    assert "seeds_until adds seeds to the grid's seed axis" in capsys.readouterr().err


def test_a_real_sweep_adds_a_seed_and_never_reruns_a_done_run(tmp_path, monkeypatch, capsys):
    """Seeds 0 and 1 done (91 and 90 points), an interval asked narrower than 0.01 points: the sweep
    trains seed 2 (1 epoch on 200 digits), then stops at max_seeds 3; the done runs are left as they were."""
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = tmp_path / "tiny.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: tiny
            grid: {seed: [0, 1]}
            fixed: {dataset: digits, subset: 200, backbone: small, epochs: 1, batch_size: 64,
                    method_args: {proj_hidden_dim: 64, proj_output_dim: 16}}
            seeds_until: {max_seeds: 3}
            wandb: {mode: disabled}
            """
        )
    )
    results = tmp_path / "results"
    spec = load_sweep(path)
    for seed, accuracy in ((0, 91.0), (1, 90.0)):
        finish(results / "tiny", spec, seed, accuracy)
    done = {p.name: (p / "status.json").read_text() for p in (results / "tiny").iterdir()}
    args = ["sweep", str(path), "--seeds-until-width", "0.01", "--results-dir", str(results)]
    assert main([*args, "--dry-run"]) == 0
    before = capsys.readouterr().out
    assert "3 runs" in before and "2 done, 1 new" in before and "+ the cell: seed 2 (width 12.71 > 0.01" in before
    assert main([*args, "--executor", "debug"]) == 0
    out = capsys.readouterr().out
    assert "0 narrow enough, 1 at the cap, 0 given a seed" in out and "runs: 3 done" in out
    folders = [p for p in (results / "tiny").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 3
    assert all((results / "tiny" / name / "status.json").read_text() == text for name, text in done.items())
    assert len(read_json(results / "tiny" / "sweep.json")["runs"]) == 3  # tables count the added seed
