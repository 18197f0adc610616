"""The SLURM side of sweeps that needs no cluster: profiles, sbatch parameters, array chunking, and
the clear error on a machine without SLURM. (Submissions to a real SLURM: see the SLURM tests.)"""

from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.errors import ConfigError
from benchmark.sweep.profiles import chunks, load_profile
from benchmark.sweep.spec import Resources
from tests.conftest import REPO


def test_example_profile_gives_sbatch_parameters_with_a_time_limit(monkeypatch):
    monkeypatch.chdir(REPO)
    params = load_profile("example").sbatch_parameters(Resources(gpus=2, cpus=8, mem_gb=32, timeout_min=120))
    assert params["partition"] == "gpu" and params["time"] == 120 and params["gpus_per_node"] == 2
    assert params["cpus_per_task"] == 8 and params["mem"] == "32768M" and params["array_parallelism"] == 64
    assert params["ntasks_per_node"] == 2  # one process per GPU
    assert "account" not in params and "gres" not in params


def test_profile_gres_and_time_override_the_sweep(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("gres: gpu:a100:1\ntime_min: 30\naccount: lab\nadditional: {mail-type: END}\n")
    params = load_profile(str(path)).sbatch_parameters(Resources(gpus=1, timeout_min=600))
    assert params["gres"] == "gpu:a100:1" and "gpus_per_node" not in params and params["time"] == 30
    assert params["account"] == "lab" and params["additional_parameters"] == {"mail-type": "END"}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("partion: gpu\n", "unknown profile key for"),
        ("array_parallelism: 0\n", "array_parallelism must be >= 1"),
        ("setup: module load cuda\n", "profile.setup must be list"),
    ],
)
def test_bad_profiles_are_named(tmp_path, text, fragment):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_profile(str(path))


def test_unknown_profile_lists_the_shipped_ones(monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(ConfigError, match="profile 'mycluster' not found.*valid: example"):
        load_profile("mycluster")


def test_arrays_are_chunked_to_the_array_size():
    assert [len(c) for c in chunks(list(range(2500)), 1001)] == [1001, 1001, 498]


def test_slurm_executor_without_slurm_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a machine without SLURM's commands
    assert main(["sweep", "sweeps/digits.yaml", "--executor", "slurm", "--results-dir", str(tmp_path)]) == 2
    assert "needs SLURM's sbatch" in capsys.readouterr().err and not any(tmp_path.iterdir())
