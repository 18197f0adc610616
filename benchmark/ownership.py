"""Whose run a folder holds, from every file that can say so, not from status.json alone: a folder
whose status.json is missing or damaged may still hold a finished run of another config, or a user's
own files. Before an attempt writes anything (benchmark/attempt.py) the folder must be this run's:

- a status.json, config.json or result.json that names another run_id: refused, --restart or not
  (the folder holds another experiment; use a new --out or remove it);
- a config.json that is JSON but no config of this suite: refused unless --restart;
- run files (config, result, metrics, checkpoint) and no readable status.json, with nothing naming this
  run: refused unless --restart (another run's or a damaged one: nothing says which).

A damaged file beside files that name this run is this run's damage, which the attempt repairs or redoes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from benchmark.data.base import DataMissingError
from benchmark.errors import ConfigError, DamagedFile
from benchmark.rundir import RunDir, read_object

RUN_FILES = ("config.json", "result.json", "metrics.jsonl", "checkpoint.pt")


class ForeignRun(ConfigError):
    """The folder holds another run, or files whose run nothing tells: never written over."""


@dataclass
class Evidence:
    """What a folder's files say about whose run it holds."""

    named: dict[str, str] = field(default_factory=dict)  # file -> the run_id it names
    foreign: str | None = None  # why a file is not this suite's (a user's own config.json)
    status_readable: bool = False
    files: list[str] = field(default_factory=list)  # the run files present


def config_run_id(config: dict) -> str | None:
    """The run_id a config.json reproduces; None when it cannot be told here (its data moved away);
    ConfigError when it is no config of this suite."""
    from benchmark.config import RunConfig

    try:
        return RunConfig.from_dict(config).run_id
    except DataMissingError:
        return None


def not_a_config(config: dict, err: ConfigError) -> str:
    """Why a JSON object is no config: the keys a config does not have, else the first problem."""
    from benchmark.config import RunConfig

    unknown = sorted(set(config) - {f.name for f in fields(RunConfig)})
    if unknown:
        return f"keys no config has: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}"
    return " ".join(str(err).split())[:160]


def evidence(run: RunDir) -> Evidence:
    found = Evidence(files=[name for name in RUN_FILES if (run.path / name).exists()])
    status = run.status_or_none() if run.status.exists() else None  # (a missing one reads as `pending`)
    found.status_readable = status is not None
    if status is not None and status.get("run_id"):
        found.named["status.json"] = str(status["run_id"])
    if run.config.is_file():
        try:
            config = read_object(run.config)
        except DamagedFile:
            config = None  # damaged: says nothing, repaired by the run it belongs to
        if config is not None:
            try:
                named = config_run_id(config)
            except ConfigError as err:
                found.foreign = f"config.json is no config of this suite ({not_a_config(config, err)})"
            else:
                if named:
                    found.named["config.json"] = named
    if run.result.is_file():
        try:
            result = read_object(run.result)
        except DamagedFile:
            result = {}
        if isinstance(result.get("run_id"), str):
            found.named["result.json"] = result["run_id"]
    return found


def check_owner(run: RunDir, run_id: str, restart: bool) -> None:
    """ForeignRun unless the folder is new, or this run's (see the module's docstring)."""
    if not run.path.is_dir():
        return
    found = evidence(run)
    for name, other in found.named.items():
        if other != run_id:
            raise ForeignRun(
                f"{run.path} holds run {other} ({name}), not {run_id}: the config changed; use a new --out "
                f"(or remove that folder)"
            )
    if restart:
        return
    if found.foreign:
        raise ForeignRun(f"{run.path}: {found.foreign}; --restart replaces it, or use a new --out")
    if found.files and not found.status_readable and not found.named:
        why = "damaged" if run.status.exists() else "missing"
        raise ForeignRun(
            f"{run.path} holds {', '.join(found.files)} but its status.json is {why} and nothing names run "
            f"{run_id}: another run's or a damaged one; --restart replaces it, or use a new --out"
        )
