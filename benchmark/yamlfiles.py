"""Reading the YAML files a person writes (run configs, sweep, tuning and include files, SLURM
profiles): a missing, unreadable, malformed or unboundedly large file is one line naming it and saying
what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import ConfigError
from benchmark.yamllimits import MAX_BYTES, YamlTooLarge, load_bounded


def load_yaml(path: str | Path, what: str) -> Any:
    """The file's YAML within bounds (benchmark/yamllimits.py): a file too large, too deep or with too
    many aliases is refused in one line before it expands."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:  # never more than the bound, whatever the file claims its size is
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise YamlTooLarge(f"{what} {str(path)!r} is larger than {MAX_BYTES:,} bytes, the most that is read")
        return load_bounded(data.decode(), f"{what} {str(path)!r}")
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(err).split())}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err}") from None
