"""`--from-bundle DIR` on a node without internet: the bundle's wheels are installed once into DIR/site
(pip, no package index, exactly the pinned requirements), which goes first on the path of the check and
its steps. The node's Python keeps its own packages (its CUDA build of torch) for everything the bundle
leaves out; any Python works, a system one, a module's, a conda or virtual environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from gpu.check.options import CheckError

STAMP = ".installed"  # in DIR/site: the requirements it holds


def _check_python(bundle: Path) -> None:
    made_for = json.loads((bundle / "bundle.json").read_text()).get("python_version", "")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if made_for and made_for != here:
        raise CheckError(
            f"--from-bundle {bundle}: its wheels are for CPython {made_for}, this is {here} ({sys.executable}); "
            f"run with PYTHON=python{made_for}, or make the bundle with --python-version {here}"
        )


def bundle_site(bundle: Path) -> Path:
    """DIR/site with DIR/requirements.txt installed from DIR/wheels (once per requirements)."""
    requirements, wheels = bundle / "requirements.txt", bundle / "wheels"
    if not requirements.is_file() or not wheels.is_dir() or not (bundle / "bundle.json").is_file():
        raise CheckError(
            f"--from-bundle {bundle}: no bundle.json, requirements.txt and wheels/ there; make one with --bundle"
        )
    _check_python(bundle)
    site, wanted = bundle / "site", requirements.read_text()
    if (site / STAMP).is_file() and (site / STAMP).read_text() == wanted:
        return site
    fresh = bundle / "site.new"
    shutil.rmtree(fresh, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", str(wheels)]
    cmd += ["--target", str(fresh), "-r", str(requirements)]
    print(f"[check] installing the bundle's wheels: {' '.join(cmd)}", flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise CheckError(f"installing the wheels of {bundle} failed (pip's message is above)")
    (fresh / STAMP).write_text(wanted)
    shutil.rmtree(site, ignore_errors=True)
    fresh.rename(site)
    return site


def use_bundle(bundle: Path) -> None:
    """The bundle's packages first on this process's path and on its steps' (through PYTHONPATH)."""
    site = str(bundle_site(bundle.resolve()))
    sys.path.insert(0, site)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH")) if p)
