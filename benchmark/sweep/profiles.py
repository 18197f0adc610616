"""SLURM profiles (`slurm/profiles/<name>.yaml`): what a cluster needs in every sbatch (partition,
account, qos, gres, ...), kept out of the sweep files so one sweep runs on any cluster."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import shipped
from benchmark.errors import ConfigError
from benchmark.params import resolve_params
from benchmark.sweep.spec import Resources
from benchmark.yamlfiles import load_yaml

PROFILE_DIR = Path("slurm/profiles")


@dataclass(frozen=True)
class SlurmProfile:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gres: str | None = None  # e.g. gpu:a100:1; default: --gpus-per-node from resources.gpus
    time_min: int | None = None  # overrides resources.timeout_min
    array_parallelism: int = 64  # tasks of one array running at once
    max_array_size: int | None = None  # default: MaxArraySize from `scontrol show config`
    signal_delay_s: int = 120  # preemption signal this long before the time limit: time to checkpoint
    exclusive: bool = False
    setup: list = field(default_factory=list)  # shell lines run before the job (module load, ...)
    additional: dict = field(default_factory=dict)  # any other sbatch option, e.g. {mail-type: END}

    def validate(self) -> None:
        if self.array_parallelism < 1:
            raise ConfigError(f"profile array_parallelism must be >= 1, got {self.array_parallelism}")
        if self.max_array_size is not None and self.max_array_size < 1:
            raise ConfigError(f"profile max_array_size must be >= 1, got {self.max_array_size}")

    def sbatch_parameters(self, resources: Resources) -> dict[str, Any]:
        """Parameters of submitit's SlurmExecutor for one run of `resources`; the time is always set."""
        params: dict[str, Any] = {
            "time": self.time_min or resources.timeout_min,
            "nodes": resources.nodes,
            "ntasks_per_node": resources.tasks,  # one process per GPU: DistributedDataParallel
            "cpus_per_task": resources.cpus,
            "mem": f"{int(resources.mem_gb * 1024)}M",
            "array_parallelism": self.array_parallelism,
            "signal_delay_s": self.signal_delay_s,
            "setup": list(self.setup),
            "additional_parameters": dict(self.additional),
            "job_name": "gpsbench",
        }
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[key] = getattr(self, key)
        if self.gres:
            params["gres"] = self.gres
        elif resources.gpus:
            params["gpus_per_node"] = resources.gpus
        if self.exclusive:
            params["exclusive"] = True
        return params


def find_profile(name: str | None) -> Path | None:
    if not name:
        return None
    path = Path(name)
    if path.is_file():
        return path
    named = PROFILE_DIR / f"{name}.yaml"
    if named.is_file():
        return named
    found = shipped.find("profiles", name)  # the profiles an installed package ships
    if found is not None:
        return found
    here = {p.stem for p in PROFILE_DIR.glob("*.yaml")} if PROFILE_DIR.is_dir() else set()
    valid = sorted(here | {Path(n).stem for n in shipped.names("profiles")})
    raise ConfigError(
        f"SLURM profile {name!r} not found (a file, or a name in {PROFILE_DIR}/ or the shipped profiles); "
        f"valid: {', '.join(valid) or 'none shipped'}"
    )


def load_profile(name: str | None) -> SlurmProfile:
    path = find_profile(name)
    if path is None:
        return SlurmProfile()
    raw = load_yaml(path, "SLURM profile") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"SLURM profile {str(path)!r} must hold a mapping of settings")
    raw = {key: value for key, value in raw.items() if value is not None}  # null: the default
    try:
        return resolve_params(SlurmProfile, raw, "profile", str(path))
    except ConfigError as err:
        raise ConfigError(f"SLURM profile {str(path)!r}: {err}") from None


def cluster_max_array_size() -> int:
    """MaxArraySize of the cluster (an array may hold that many tasks); SLURM's default 1001 if unknown."""
    if shutil.which("scontrol"):
        try:
            out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
            match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
            if match:
                return int(match.group(1))
        except (subprocess.SubprocessError, OSError):
            pass
    return 1001


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
