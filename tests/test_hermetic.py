"""The tests set the environment they depend on (conftest.hermetic_environment): a user's exported
WANDB_MODE, GPSBENCH_RESULTS, SLURM_JOB_ID or CUDA_VISIBLE_DEVICES changes no outcome."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOSTILE = {
    "WANDB_MODE": "offline",
    "WANDB_PROJECT": "someone-elses",
    "GPSBENCH_RESULTS": "/nonexistent/results",
    "GPSBENCH_DATA": "/nonexistent/data",
    "SLURM_JOB_ID": "4242",
    "SUBMITIT_EXECUTOR": "slurm",
    "CUDA_VISIBLE_DEVICES": "7",
    "RANK": "3",
}


def test_the_environment_is_the_suites_own():
    assert os.environ["WANDB_MODE"] == "disabled"
    leaked = {name: os.environ[name] for name in HOSTILE if name != "WANDB_MODE" and name in os.environ}
    assert not leaked, leaked


def test_a_users_exported_variables_change_no_outcome(tmp_path):
    """The test above, in a pytest started with every HOSTILE variable exported, as a cluster user's
    shell would have them."""
    inner = f"{Path(__file__)}::test_the_environment_is_the_suites_own"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", inner],
        cwd=Path(__file__).parent.parent,
        env={**os.environ, **HOSTILE},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:]
