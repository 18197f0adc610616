"""The local executor's GPU slots map through the parent's allocation: slot i gets the i-th entry of
CUDA_VISIBLE_DEVICES (an index, a GPU- or MIG- UUID) or of SLURM's variables, never a bare 0..n-1."""

from __future__ import annotations

import dataclasses
import io
import os

import pytest

from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.sweep.executors import (
    Devices,
    ExecutorOptions,
    Launch,
    LocalExecutor,
    Progress,
    allocated_devices,
    gpu_slots,
)
from benchmark.sweep.job import RunJob
from benchmark.sweep.spec import Resources
from tests.conftest import REPO

UUID = "GPU-8f6b2c1e-4d3a-9b7f-0e2d-1c5a6b7d8e9f"
MIG = "MIG-5a1b2c3d-0e1f-4a5b-8c9d-7e6f5a4b3c2d"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"CUDA_VISIBLE_DEVICES": "2,3"}, Devices(("2", "3"), "CUDA_VISIBLE_DEVICES")),
        ({"CUDA_VISIBLE_DEVICES": f"{UUID}, {MIG}"}, Devices((UUID, MIG), "CUDA_VISIBLE_DEVICES")),
        ({"CUDA_VISIBLE_DEVICES": "1,-1,2"}, Devices(("1",), "CUDA_VISIBLE_DEVICES")),  # CUDA stops at -1
        ({"CUDA_VISIBLE_DEVICES": ""}, Devices((), "CUDA_VISIBLE_DEVICES")),
        # inside a SLURM job: CUDA_VISIBLE_DEVICES (renumbered under cgroups) first, then the step, then the job
        ({"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_GPUS": "4,5"}, Devices(("0", "1"), "CUDA_VISIBLE_DEVICES")),
        ({"SLURM_STEP_GPUS": "6", "SLURM_JOB_GPUS": "4,5,6,7"}, Devices(("6",), "SLURM_STEP_GPUS")),
        ({"SLURM_JOB_GPUS": "4,5,6,7"}, Devices(("4", "5", "6", "7"), "SLURM_JOB_GPUS")),
        ({"GPU_DEVICE_ORDINAL": "3"}, Devices(("3",), "GPU_DEVICE_ORDINAL")),
        ({"HOME": "/root"}, None),  # nothing allocated: every GPU torch sees, 0..n-1
    ],
)
def test_allocated_devices_reads_cuda_then_slurm(env, expected):
    assert allocated_devices(env) == expected


def test_slots_take_the_allocation_in_order_and_too_many_slots_is_an_error():
    devices = Devices(("2", "3", UUID, MIG), "CUDA_VISIBLE_DEVICES")
    assert [slot.gpus for slot in gpu_slots(devices, 1, None, cores=8)] == [("2",), ("3",), (UUID,), (MIG,)]
    assert [slot.gpus for slot in gpu_slots(devices, 2, None, cores=8)] == [("2", "3"), (UUID, MIG)]
    assert [(s.gpus, s.threads) for s in gpu_slots(devices, 1, 2, cores=8)] == [(("2",), 4), (("3",), 4)]
    with pytest.raises(ConfigError) as err:
        gpu_slots(Devices(("2", "3"), "CUDA_VISIBLE_DEVICES"), 1, 3, cores=8)
    assert str(err.value) == (
        "--max-parallel 3 with 1 GPU(s) per run needs 3 GPUs and CUDA_VISIBLE_DEVICES makes 2 visible (2,3): "
        "valid --max-parallel 1..2"
    )
    with pytest.raises(ConfigError, match=r"asks for 2 GPU\(s\) per run and SLURM_JOB_GPUS makes 1 visible \(5\)"):
        gpu_slots(Devices(("5",), "SLURM_JOB_GPUS"), 2, None, cores=8)


class DevicesSeen(RunJob):
    """A real sweep run that also writes down the CUDA_VISIBLE_DEVICES its process trained under."""

    def __call__(self):
        result = super().__call__()
        (self.run_dir / "cuda_visible_devices").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        return result


@pytest.mark.slow
def test_local_jobs_see_the_parents_devices_not_0_to_n(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"2,{UUID}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))  # unpickling
    resources = Resources(gpus=1, timeout_min=20, max_attempts=1)
    executor = LocalExecutor(ExecutorOptions(poll_s=0.5), resources, devices=allocated_devices(os.environ))
    assert [str(slot) for slot in executor.slots] == ["GPU 2", f"GPU {UUID}"]

    config = RunConfig.from_dict(
        {
            "dataset": "digits",
            "epochs": 1,
            "batch_size": 256,
            "progress": False,
            "wandb_mode": "disabled",
            "data_dir": str(tmp_path / "data"),
            "method_args": {"proj_hidden_dim": 64, "proj_output_dim": 16},
        }
    )
    sweep_dir = tmp_path / "r" / "slots"
    configs = [dataclasses.replace(config, seed=seed) for seed in (0, 1)]
    jobs = [DevicesSeen(c, sweep_dir / f"run{c.seed}", tmp_path / "r", []) for c in configs]
    out = io.StringIO()
    executor.run(Launch(jobs, sweep_dir, resources, []), Progress(2, 0, {}, out))

    assert out.getvalue().count(" done ") == 2, out.getvalue()
    seen = sorted((job.run_dir / "cuda_visible_devices").read_text() for job in jobs)
    assert seen == sorted(["2", UUID])
