"""The packages gps-bench needs at run time on another machine: its requirements and theirs, followed
through the metadata of what is installed here, with each environment marker evaluated for the node's
Python and platform, each pinned to the version installed (and tested) here."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Callable

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "gps-bench"
NODE_TORCH = frozenset({"torch", "torchvision"})  # a GPU node's own CUDA build, by default (--with-torch)


@dataclass(frozen=True)
class Target:
    """The node's interpreter: CPython `python_version` on Linux `machine` (x86_64, aarch64)."""

    python_version: str
    machine: str = "x86_64"

    def markers(self, extra: str = "") -> dict[str, str]:
        full = self.python_version if self.python_version.count(".") == 2 else f"{self.python_version}.0"
        return {
            "python_version": ".".join(self.python_version.split(".")[:2]),
            "python_full_version": full,
            "implementation_name": "cpython",
            "implementation_version": full,
            "platform_python_implementation": "CPython",
            "os_name": "posix",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": self.machine,
            "platform_release": "",
            "platform_version": "",
            "extra": extra,
        }


def machine_of(platforms: list[str]) -> str:
    """The CPU of wheel platform tags such as manylinux_2_28_x86_64 or manylinux2014_aarch64."""
    machines = {tag.split("_", 3)[-1] if tag.startswith("manylinux_") else tag.split("_", 1)[-1] for tag in platforms}
    if len(machines) != 1:
        raise ValueError(f"--platform {', '.join(platforms)}: tags of one machine (x86_64 or aarch64) expected")
    return machines.pop()


def _applies(requirement: Requirement, target: Target, extras: set[str]) -> bool:
    marker = requirement.marker
    return marker is None or any(marker.evaluate(target.markers(extra)) for extra in ("", *extras))


def requirement_closure(
    target: Target,
    skip: frozenset[str] = NODE_TORCH,
    root: str = PROJECT,
    lookup: Callable[[str], metadata.Distribution] = metadata.distribution,
) -> dict[str, str]:
    """{name: "name==version"} of every distribution `root` needs on `target`, leaving out `skip` and
    what only they need; a requirement not installed here (a marker false here, true there) keeps its
    specifier, for pip to choose the version."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(root)]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in skip or (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        try:
            dist = lookup(requirement.name)
        except metadata.PackageNotFoundError:
            pins.setdefault(name, f"{requirement.name}{requirement.specifier}")
            continue
        if name != canonicalize_name(root):
            pins[name] = f"{dist.metadata['Name']}=={dist.version}"
        for line in dist.requires or []:
            needed = Requirement(line)
            if _applies(needed, target, requirement.extras):
                todo.append(needed)
    return dict(sorted(pins.items()))
