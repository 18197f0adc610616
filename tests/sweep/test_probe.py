"""A dry run estimates runs of a data set no done run has measured, from a few real training steps
timed on this machine, and says so; a kind of run it cannot probe (its data is missing) is named."""

from __future__ import annotations

import re
import textwrap

from benchmark.cli import main


def test_dry_run_probes_a_data_set_without_done_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPSBENCH_DATA", str(tmp_path / "data"))
    path = tmp_path / "probe.yaml"
    path.write_text(
        textwrap.dedent("""
        name: probe
        grid: {seed: [0, 1, 2], dataset: [digits, cifar10]}
        fixed: {backbone: small, epochs: 4, batch_size: 64, method_args: {proj_hidden_dim: 64, proj_output_dim: 16}}
        wandb: {mode: disabled}
    """)
    )
    assert main(["sweep", str(path), "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    estimate = re.search(
        r"estimate from a timed probe \(2 training steps of each kind of run on this machine, training only: "
        r"no prior, no evaluation\): ([\d.]+) (min|run-hours) for the 3 of 6 runs to do that no done run has measured",
        out,
    )
    assert estimate and float(estimate.group(1)) > 0, out
    assert "no probe for cifar10 simclr: " in out and "cifar10" in out.split("no probe for ")[1]
    assert not (tmp_path / "r" / "probe").exists()  # a dry run writes nothing
