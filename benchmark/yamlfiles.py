"""Reading the YAML files a person writes (run configs, sweep, tuning and include files, SLURM
profiles): a missing, unreadable or malformed file is one line naming it and saying what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import ConfigError


def load_yaml(path: str | Path, what: str) -> Any:
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(err).split())}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{what} {str(path)!r} cannot be read: {err}") from None
