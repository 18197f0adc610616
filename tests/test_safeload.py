"""Loading a torch file that is not one: any bytes give one error naming the file, never a traceback
from inside torch's unpickler (which raises IndexError, TypeError, struct.error, ... on garbage)."""

from __future__ import annotations

import random

import pytest

from benchmark.errors import DamagedFile, UnsafeFile
from benchmark.safeload import load_torch


@pytest.mark.parametrize("seed", range(100))
def test_random_bytes_are_a_damaged_file(seed, tmp_path):
    rng = random.Random(seed)
    path = tmp_path / "garbage.pt"
    path.write_bytes(rng.randbytes(rng.choice([1, 16, 2048])))
    with pytest.raises((DamagedFile, UnsafeFile)) as err:
        load_torch(path, "weights file")
    assert "garbage.pt" in str(err.value) and "\n" not in str(err.value)
