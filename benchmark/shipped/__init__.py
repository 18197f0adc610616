"""Files the suite ships beside its code: the sweep and tuning files (`sweeps/`), the SLURM profiles
(`slurm/profiles/`) and the paper's reference tables (`results/reference/`). A checkout keeps them at
its top, where users edit them; a wheel carries the same folders inside this package (setup.py maps
them in), so `--profile local`, `--compare paper` and `gpsbench sweep sweeps/digits.yaml` work from an
installed package too. A file in the working directory always wins over the shipped one."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# kind -> its folder in a checkout (relative to the repository root) and inside this package
FOLDERS = {"sweeps": "sweeps", "profiles": "slurm/profiles", "reference": "results/reference"}


def folder(kind: str) -> Path | None:
    """The shipped folder of `kind`: the installed package's copy, else the checkout's; None if neither."""
    installed = Path(str(resources.files(__name__).joinpath(kind)))
    checkout = Path(__file__).resolve().parents[2] / FOLDERS[kind]
    return next((path for path in (installed, checkout) if path.is_dir()), None)


def names(kind: str, suffix: str = ".yaml") -> list[str]:
    """The shipped files of `kind` (for 'valid: ...' hints)."""
    found = folder(kind)
    return sorted(p.name for p in found.glob(f"*{suffix}")) if found else []


def find(kind: str, name: str) -> Path | None:
    """A shipped file by name (`digits.yaml`, or `digits`: the .yaml is added), None if not shipped."""
    found = folder(kind)
    if found is None:
        return None
    for candidate in (name, f"{name}.yaml"):
        if (found / candidate).is_file():
            return found / candidate
    return None
