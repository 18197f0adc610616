"""Where runs execute. `debug`: in this process, one after another. `local`: our own slot scheduler
over submitit's LocalExecutor (which by itself starts every job at once): one run per visible GPU
group, or --max-parallel runs on the CPU. `slurm`: job arrays through submitit, chunked to the
cluster's MaxArraySize; it submits and returns. A `run:` prior's cell starts after its source.
Each executor also starts a tuning study's workers (`start_workers`), so `gpsbench tune` picks its
executor from the same registry as `gpsbench sweep`.

One module per executor (`debug`, `local`, `slurm`), each registered in EXECUTORS (`base`, with the
protocol they follow); `slots` is the slot scheduler the debug and local executors share. The names
below are the package's interface.
"""

from benchmark.sweep.executors import debug, local, slurm  # noqa: F401  (register the executors)
from benchmark.sweep.executors.base import (
    EXECUTORS,
    Executor,
    ExecutorOptions,
    Launch,
    Progress,
    Workers,
    mark_submitted,
)
from benchmark.sweep.executors.local import (
    DEVICE_VARIABLES,
    Devices,
    LocalExecutor,
    Slot,
    allocated_devices,
    gpu_slots,
    visible_gpus,
)
from benchmark.sweep.executors.slots import SlotScheduler

__all__ = [
    "DEVICE_VARIABLES",
    "EXECUTORS",
    "Devices",
    "Executor",
    "ExecutorOptions",
    "Launch",
    "LocalExecutor",
    "Progress",
    "Slot",
    "SlotScheduler",
    "Workers",
    "allocated_devices",
    "gpu_slots",
    "mark_submitted",
    "visible_gpus",
]
