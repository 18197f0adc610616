"""Files a run reads whose content, not their path, is part of the experiment: a `weights` file, a local
`prior_args.weights` file, and the checkpoint of a `run:<dir>` prior. Each enters run_id as a checksum
of its bytes in place of its path, so that a file replaced at the same path makes a new run instead of
an "already done" one, and one file at two paths is one run. Only a config that uses one of them gets
the checksum: every other run keeps its run_id.

A `run:<run_id>` prior is named by its source's run_id, which already stands for the source's content
(its config and its data): that is how a sweep names a cell's source before it has trained. Its
checkpoint must be that run's (benchmark/priors/networks.py checks the run_id it holds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.data.identity import content_fingerprint
from benchmark.priors import parse_prior
from benchmark.priors.networks import TORCHVISION_WEIGHTS
from benchmark.rundir import is_run_id

CONTENT = "content:"  # a path's place in the identity, taken by the checksum of what it holds


def _checksum(path: str | Path, what: str) -> str:
    return CONTENT + content_fingerprint(path, what)


def is_local_file(weights: Any) -> bool:
    """prior_args.weights names a local file (not `torchvision:<tag>`, a download)."""
    return isinstance(weights, str) and not weights.startswith(TORCHVISION_WEIGHTS)


def content_identity(config, identity: dict[str, Any]) -> dict[str, Any]:
    """`identity` (config.resolved()) with each file the config reads replaced by its checksum."""
    identity = dict(identity)
    if config.weights is not None:
        identity["weights"] = _checksum(config.weights, "weights file")
    prior_args = identity.get("prior_args")
    if isinstance(prior_args, dict) and is_local_file(prior_args.get("weights")):
        identity["prior_args"] = {**prior_args, "weights": _checksum(prior_args["weights"], "prior_args.weights")}
    kind, arg = parse_prior(identity.get("prior", "none"))
    if kind == "run" and arg is not None and not is_run_id(arg):
        identity["prior"] = "run:" + _checksum(Path(arg) / "checkpoint.pt", f"prior run:{arg}: checkpoint")
    return identity
