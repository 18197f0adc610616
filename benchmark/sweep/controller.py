"""Whether a SLURM controller answers, asked once before a sweep or study submits anything: without
one, sbatch would fail deep inside submitit with a traceback, after the plan was written."""

from __future__ import annotations

import shutil
import subprocess

from benchmark.errors import ConfigError

PING_TIMEOUT_S = 30


def check_controller() -> None:
    """ConfigError in one line unless `scontrol ping` says a controller is UP."""
    if not shutil.which("scontrol"):
        return  # sbatch without scontrol: nothing to ask; submitting says what is wrong
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=PING_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        said = f"scontrol ping did not answer within {PING_TIMEOUT_S} s"
    except OSError as err:
        said = f"scontrol ping could not run ({err.strerror or err})"
    else:
        if ping.returncode == 0 and " is UP" in ping.stdout:
            return
        lines = (ping.stdout + ping.stderr).strip().splitlines()
        said = " ".join(lines[-1].split())[:200] if lines else f"scontrol ping: exit {ping.returncode}"
    raise ConfigError(
        f"--executor slurm: no SLURM controller answers ({said}); check SLURM_CONF, or run on a login "
        f"node; valid executors here: local, debug"
    )
