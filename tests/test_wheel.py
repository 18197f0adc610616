"""A wheel of the package carries the shipped sweeps, SLURM profiles and reference tables, and the
installed command finds them from a folder outside the checkout (`python -m benchmark` included)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def clean_env() -> dict[str, str]:
    """The dependencies from this interpreter's site-packages; the package itself only from the wheel."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "PYTHONPATH": os.pathsep.join(site.getsitepackages())
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the checkout's files (git's view), so setuptools' build/ and egg-info stay out of it."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    )
    for name in listed.stdout.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "-w", str(out), "--no-deps", "--no-build-isolation", "-q"],
        check=True,
        capture_output=True,
        env=clean_env(),
    )
    [found] = out.glob("gps_bench-*.whl")
    return found


@pytest.mark.slow
@pytest.mark.wheel
def test_wheel_holds_the_shipped_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, folder in (("sweeps", "sweeps"), ("profiles", "slurm/profiles"), ("reference", "results/reference")):
        shipped = {f"benchmark/shipped/{kind}/{p.name}" for p in (REPO / folder).iterdir() if p.is_file()}
        assert shipped and shipped <= names, sorted(shipped - names)
    assert "benchmark/__main__.py" in names


@pytest.mark.slow
@pytest.mark.wheel
def test_installed_command_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = clean_env()
    subprocess.run(
        [venv / "bin/pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True, env=env
    )
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = run(str(venv / "bin/python"), "-c", "import benchmark; print(benchmark.__file__)")
    assert where.startswith(str(venv))
    plan = run(str(venv / "bin/gpsbench"), "sweep", "sweeps/digits.yaml", "--dry-run")
    assert plan.startswith("sweep digits -> results/digits: 24 cells")
    again = run(str(venv / "bin/python"), "-m", "benchmark", "sweep", "digits", "--dry-run")
    assert again.splitlines()[:3] == plan.splitlines()[:3]  # the same plan (its timed estimate varies)
    from benchmark.sweep.profiles import load_profile

    show = "from benchmark.sweep.profiles import load_profile; print(load_profile('local'))"
    installed = run(str(venv / "bin/python"), "-c", show)
    assert installed.strip() == str(load_profile(str(REPO / "slurm/profiles/local.yaml")))
    reference = run(
        str(venv / "bin/python"), "-c", "from benchmark.published import load_reference; print(len(load_reference()))"
    )
    assert int(reference) > 0
