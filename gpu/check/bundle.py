"""`--bundle DIR`: what a GPU node without internet needs to run the check, made where pip reaches a
package index: the wheels of every runtime requirement for the node's Python and platform (closure.py),
the CIFAR-10 archive, and this checkout's code.

    DIR/requirements.txt   the pinned requirements (name==version, as installed and tested here)
    DIR/wheels/            their wheels, for CPython <python-version> on <platform>
    DIR/data/              cifar10-jpeg.tar.gz
    DIR/gps-bench/         the checkout's tracked and untracked, not ignored, files
    DIR/bundle.json        what is in it: sizes, the archive's sha256, the commit, what was left to the node
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from gpu.check.closure import NODE_TORCH, PROJECT, Target, machine_of, requirement_closure
from gpu.check.environment import ARCHIVE, archive_places, find_data_path
from gpu.check.options import REPO, CheckError

MANYLINUX_X86_64 = [f"manylinux_2_{n}_x86_64" for n in (28, 27, 17)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]
CODE_DIR = "gps-bench"


def download_wheels(requirements: Path, wheels: Path, target: Target, platforms: list[str]) -> None:
    """pip download of exactly the pinned wheels (no resolving: the pins are the closure already)."""
    fresh = wheels.with_name(wheels.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    tags = [x for tag in platforms for x in ("--platform", tag)]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--implementation", "cp"]
    cmd += ["--python-version", target.python_version, *tags, "-d", str(fresh), "-r", str(requirements)]
    print(f"[bundle] {' '.join(cmd)}", flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise CheckError(
            f"pip found no wheel of a requirement in {requirements} for CPython {target.python_version} on "
            f"{', '.join(platforms)} (its message is above); --python-version and --platform name the node's"
        )
    shutil.rmtree(wheels, ignore_errors=True)  # one version of each: two would stop the install on the node
    fresh.rename(wheels)


def copy_code(dest: Path, leave_out: Path) -> str:
    """The checkout's files as `git ls-files` lists them (tracked, and untracked but not ignored), and the
    commit they stand on."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True, text=True
    )
    if listed.returncode != 0:
        raise CheckError(f"{REPO} is not a git checkout ({listed.stderr.strip()}): --bundle copies its listed files")
    shutil.rmtree(dest, ignore_errors=True)
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file() and not source.resolve().is_relative_to(leave_out):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return head.stdout.strip()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_bundle(args: argparse.Namespace) -> int:
    dest = args.bundle.resolve()
    platforms = args.platform or MANYLINUX_X86_64
    python_version = args.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    archive = find_data_path(args.data_path)
    if archive is None:
        looked = args.data_path or " or ".join(map(str, archive_places(None)))
        raise CheckError(f"no CIFAR-10 archive at {looked}: give --data-path")
    try:
        target = Target(python_version, machine_of(platforms))
    except ValueError as err:
        raise CheckError(str(err)) from None
    try:
        metadata.distribution(PROJECT)
    except metadata.PackageNotFoundError:
        raise CheckError(
            f"{PROJECT} is not installed for {sys.executable}: the bundle pins what `make install` put in .venv"
        ) from None
    skip = frozenset() if args.with_torch else NODE_TORCH
    pins = requirement_closure(target, skip)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "requirements.txt").write_text("".join(line + "\n" for line in pins.values()))
    download_wheels(dest / "requirements.txt", dest / "wheels", target, platforms)
    (dest / "data").mkdir(exist_ok=True)
    shutil.copyfile(archive, dest / "data" / ARCHIVE)
    commit = copy_code(dest / CODE_DIR, dest)
    manifest = {
        "made": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python_version": python_version,
        "platforms": platforms,
        "left_to_the_node": sorted(skip),
        "requirements": list(pins.values()),
        "wheels": {p.name: p.stat().st_size for p in sorted((dest / "wheels").iterdir())},
        "data": {"file": f"data/{ARCHIVE}", "bytes": archive.stat().st_size, "sha256": sha256(archive)},
        "code": {"dir": CODE_DIR, "commit": commit},
    }
    (dest / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(_next_steps(dest, manifest))
    return 0


def _next_steps(dest: Path, manifest: dict) -> str:
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) / 2**20
    own = " and ".join(manifest["left_to_the_node"])
    needs = f"a Python {manifest['python_version']} with {own} (the node's own CUDA build)" if own else "a Python"
    return (
        f"bundle {dest}: {size:,.0f} MiB, {len(manifest['wheels'])} wheels for CPython "
        f"{manifest['python_version']} on {manifest['platforms'][0]}, the CIFAR-10 archive, the code at "
        f"{manifest['code']['commit'][:12]}\n"
        f"Copy it to the node; there, with {needs}:\n"
        f"    bash {dest}/{CODE_DIR}/gpu/check.sh --device cuda --from-bundle {dest} --out {dest}/out"
    )
