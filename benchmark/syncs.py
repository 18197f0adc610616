"""Host syncs: the calls inside a training step that make the host wait for the device.

On a GPU the host queues kernels ahead of the device; one call per step that reads a device value
(`.item()`, `float(t)`, `if t:`, `.tolist()`, `.cpu()`), sizes a result by its data (a boolean mask,
`nonzero`) or copies Python values into a new tensor (`torch.tensor([...], device=...)`) drains that
queue, so the device idles while the host launches the rest of the step. They are recognised by what
they are, not by timing, so a CPU test finds them too: a dispatch mode sees the aten operations, and
the Tensor methods that read data without dispatching are wrapped while it is active. On CUDA,
torch's own sync debug mode is switched on too, for what a dispatch mode cannot see.
"""

from __future__ import annotations

import traceback
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PACKAGE = Path(__file__).resolve().parent

SYNC_OPS = {
    "aten._local_scalar_dense.default": "reads a device value on the host (.item(), float(), bool(), if)",
    "aten.nonzero.default": "sizes a result by the data (nonzero)",
    "aten.masked_select.default": "sizes a result by the data (masked_select)",
    "aten.lift_fresh.default": "copies host values into a new tensor (torch.tensor / as_tensor)",
}
HOST_READS = {  # Tensor methods that hand device data to the host without going through the dispatcher
    "tolist": "reads device values on the host (.tolist())",
    "numpy": "reads device values on the host (.numpy())",
    "cpu": "copies to the host (.cpu())",
}


class SyncRecorder(TorchDispatchMode):
    """Records each host sync as 'reason at file:line' (the innermost frame of this package).

    On a CPU run every tensor stands in for a device tensor; on an accelerator only operations on
    its tensors count (reading a CPU scalar there makes nothing wait)."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.on_cpu = device.type == "cpu"
        self.found: list[str] = []

    def on_device(self, tensors) -> bool:
        return any(isinstance(t, torch.Tensor) and (self.on_cpu or t.device.type != "cpu") for t in tensors)

    def note(self, reason: str) -> None:
        self.found.append(f"{reason} at {_caller()}")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name in SYNC_OPS and self.on_device(args):
            self.note(SYNC_OPS[name])
        elif name in ("aten.index.Tensor", "aten.index_put_.default", "aten.index_put.default"):
            masks = [i for i in _flat(args[1]) if isinstance(i, torch.Tensor) and i.dtype == torch.bool]
            if self.on_device(masks):
                self.note("sizes a result by the data (boolean mask index)")
        return func(*args, **(kwargs or {}))


@contextmanager
def record_host_syncs(device: torch.device | None = None) -> Iterator[list[str]]:
    """Collects the host syncs of the calls made inside the block, on a run on `device`, into the
    yielded list."""
    device = device if device is not None else torch.device("cpu")
    recorder = SyncRecorder(device)
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def wrap(name: str):
        original = originals[name]

        def read(self, *args, **kwargs):
            if recorder.on_device([self]):
                recorder.note(HOST_READS[name])
            return original(self, *args, **kwargs)

        return read

    cuda = device.type == "cuda"
    try:
        for name in HOST_READS:
            setattr(torch.Tensor, name, wrap(name))
        with warnings.catch_warnings(record=True) as caught, recorder:
            warnings.simplefilter("always")
            previous = torch.cuda.get_sync_debug_mode() if cuda else 0
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                yield recorder.found
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode(previous)
        recorder.found.extend(f"CUDA: {w.message}" for w in caught if "synchronizing" in str(w.message))
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def summarize(found: list[str]) -> dict[str, int]:
    """Distinct syncs and how often each occurred."""
    return dict(Counter(found))


def _flat(indices) -> list:
    return list(indices) if isinstance(indices, (list, tuple)) else [indices]


def _caller() -> str:
    """The innermost frame inside this package (other than this module): where to fix it."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(PACKAGE) and path != Path(__file__).resolve():
            return f"{path.relative_to(PACKAGE.parent)}:{frame.lineno}"
    return "outside benchmark/"
