"""Loading files a user hands the suite without running code from them.

Weights files, checkpoints and `run:` priors are read with `torch.load(weights_only=True)`: tensors,
containers and numbers only, so a crafted pickle is refused instead of executed. CIFAR's pickled
batches are read by an unpickler that only builds numpy arrays, lists, dicts and strings. Each
failure is one line naming the file: refused (it refers to code) or damaged (truncated, not this kind
of file).
"""

from __future__ import annotations

import pickle
import re
import struct
import warnings
from pathlib import Path
from typing import Any

from benchmark.errors import DamagedFile, UnsafeFile

# what numpy needs to rebuild an array from a pickle (protocol 2 of Python 2's CIFAR files, and 5)
NUMPY_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def load_torch(path: Path, what: str) -> Any:
    """A torch file (state dict, checkpoint) with weights_only=True; one-line errors naming `path`."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        called = re.search(r"GLOBAL (\S+)", str(err))
        if called:
            raise UnsafeFile(
                f"{what} {str(path)!r} refers to {called.group(1)}: refused, files are loaded "
                f"without running code from them (tensors, numbers and containers only)"
            ) from None
        raise DamagedFile(path, f"not a {what} torch can read (a pickle of something else, or damaged)") from None
    # what torch's unpickler raises on bytes that are not a pickle it wrote (random bytes reach all of these)
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        AttributeError,
        IndexError,
        TypeError,
        struct.error,
    ) as err:
        raise DamagedFile(
            path, f"not a {what} torch can read: truncated or damaged ({type(err).__name__}: {_first_line(str(err))})"
        ) from None


def load_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise DamagedFile(path, f"not a safetensors file ({_first_line(str(err))})") from None


class _ArrayUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers; any other global is refused before it is imported."""

    def find_class(self, module: str, name: str) -> Any:
        module = module.replace("numpy.core.", "numpy._core.")  # NumPy 1's names, as in the CIFAR files
        if (module, name) not in NUMPY_GLOBALS:
            raise UnsafeFile(f"refers to {module}.{name}")
        return super().find_class(module, name)


def load_array_pickle(path: Path) -> Any:
    """A pickle of arrays and containers (CIFAR's batches, written by Python 2 with latin-1 strings)."""
    try:
        with open(path, "rb") as handle:
            return _ArrayUnpickler(handle, encoding="latin1").load()
    except UnsafeFile as err:
        raise UnsafeFile(
            f"{str(path)!r} {err}: refused, only arrays, lists, dicts and strings are loaded from pickles"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OSError, IndexError) as err:
        raise DamagedFile(
            path, f"not a pickle of arrays: truncated or damaged ({type(err).__name__}: {_first_line(str(err))})"
        ) from None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]
