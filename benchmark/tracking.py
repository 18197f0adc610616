"""Where a run's numbers go: metrics.jsonl (always) and Weights & Biases (when enabled).

W&B runs offline on machines without internet (`WANDB_MODE=offline`: files under the run
directory, `wandb sync` later) and is off for a single `gpsbench train` unless asked for, so a plain
run never blocks on a login. W&B is a mirror of metrics.jsonl: when it fails (no API key, no network,
a full disk), the run goes on with a warning and the local files stay complete.

How runs are laid out in W&B (what its grouping is made for): group = the cell without its seed, so the
UI shows mean ± std over seeds; job type = the sweep (or study); tags = the sweep and the cell's axis
values; name = method, prior, augmentation, dataset, the other axes, seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from benchmark.rundir import RunDir


def wandb_mode(configured: str | None) -> str:
    return configured or os.environ.get("WANDB_MODE") or "disabled"


def has_wandb_key() -> bool:
    """An API key in the environment or in ~/.netrc (where `wandb login` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def sweep_wandb_mode(configured: str | None) -> str:
    """A sweep logs every run: the sweep file's mode, else env WANDB_MODE, else online with an API key
    and offline (local files, `wandb sync` later) without one."""
    return configured or os.environ.get("WANDB_MODE") or ("online" if has_wandb_key() else "offline")


def _warn(action: str, err: BaseException) -> None:
    print(
        f"gpsbench: warning: W&B {action} failed ({type(err).__name__}: {err}); "
        "the run goes on, metrics.jsonl and result.json are complete",
        file=sys.stderr,
    )


@dataclass(frozen=True)
class Labels:
    """What a run is to W&B beyond its config: the sweep or study it belongs to (None: a single
    `gpsbench train`), its cell's axis values, and a tuning trial's number."""

    sweep: str | None = None
    axes: Mapping[str, Any] = field(default_factory=dict)
    trial: int | None = None

    @property
    def job_type(self) -> str:
        return self.sweep or "train"

    @property
    def tags(self) -> list[str]:
        """The sweep and `axis=value` per axis: few values each (a trial's number is config, not a tag)."""
        tags = ([self.sweep] if self.sweep else []) + [f"{axis}={value}" for axis, value in self.axes.items()]
        return [tag[:64] for tag in tags]  # W&B's limit on a tag's length


SINGLE_RUN = Labels()  # a `gpsbench train` of its own: no sweep, no cell

NAMED = ("method", "prior", "aug", "dataset", "seed")  # always in a run's name, in this order


def _short_prior(prior: str) -> str:
    """`run:<run dir>` by the folder's name; other priors (and `run:method=simclr`) as they are."""
    kind, _, arg = prior.partition(":")
    return f"{kind}:{Path(arg).name}" if kind == "run" and "=" not in arg and arg else prior


def _prior_label(config, labels: Labels) -> str:
    """The prior as the sweep names it: a `run:method=simclr` axis value is the same for every seed,
    while the config holds each seed's own source run."""
    return str(labels.axes.get("prior", config.prior if config.is_gps else "none"))


def cell_group(config, labels: Labels = SINGLE_RUN) -> str:
    """The run's group: the cell without its seed. A readable prefix and 10 hex digits of the run's
    identity (config.resolved(), as run_id) without the seed, so seeds of one cell share it and cells
    that differ anywhere (lr, k, an args block) do not. An explicit `wandb_group` wins."""
    if config.wandb_group:
        return config.wandb_group
    identity = config.resolved()
    identity.pop("seed", None)
    if "prior" in labels.axes:
        identity["prior"] = _prior_label(config, labels)
    if config.data_path is not None:
        from benchmark.data.identity import content_fingerprint

        identity["data_content"] = content_fingerprint(config.data_path)
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    prior = _short_prior(_prior_label(config, labels))
    return f"{config.method}-{prior}-{config.aug}-{config.dataset}-{digest}"[-128:]  # W&B's limit


def run_name(config, labels: Labels = SINGLE_RUN) -> str:
    """`simclr-pixel-weak-digits-s0`, with the values of any other axis (`-lr0.1`) or the trial."""
    others = [f"{axis.rsplit('.', 1)[-1]}{value}" for axis, value in labels.axes.items() if axis not in NAMED]
    if labels.trial is not None:
        others.append(f"trial{labels.trial}")
    parts = [config.method, _short_prior(_prior_label(config, labels)), config.aug, config.dataset, *others]
    return "-".join(str(part) for part in parts) + f"-s{config.seed}"


def wandb_run_id(run_path: Path, run_id: str) -> str:
    """The W&B id of the run in this folder: run_id and 8 hex digits of the folder's absolute path. A
    resumed run (same folder) continues its own W&B history; the same run_id trained in another
    results folder is another W&B run and never appends to this one's history."""
    folder = hashlib.sha256(str(Path(run_path).resolve()).encode()).hexdigest()[:8]
    return f"{run_id}-{folder}"


def wandb_config(config, run_id: str, labels: Labels = SINGLE_RUN) -> dict[str, Any]:
    """Every config key at the top level (the resolved values: each default explicit), the run_id, the
    sweep and, where the cell names the prior differently from the config (`run:method=simclr`), that
    name as `prior_label`; a trial's number as `trial`."""
    values = {**config.to_dict(), **config.resolved(), "run_id": run_id, "sweep": labels.sweep}
    if "prior" in labels.axes and str(labels.axes["prior"]) != values["prior"]:
        values["prior_label"] = str(labels.axes["prior"])
    if labels.trial is not None:
        values["trial"] = labels.trial
    return values


class Tracker:
    def __init__(self, run: RunDir, config, run_id: str, labels: Labels = SINGLE_RUN, enabled: bool = True):
        """`enabled=False`: a process other than rank 0 of a distributed run, which records nothing."""
        self.run = run
        self.enabled = enabled
        self.mode = wandb_mode(config.wandb_mode) if enabled else "disabled"
        self.wandb_run = None
        if self.mode == "disabled":
            return
        try:
            import wandb

            self.wandb_run = wandb.init(
                project=config.wandb_project,
                entity=config.wandb_entity,
                group=cell_group(config, labels),
                job_type=labels.job_type,
                tags=labels.tags,
                name=run_name(config, labels),
                id=wandb_run_id(run.path, run_id),
                resume="allow",  # this folder's own W&B run: a resumed run continues its history
                dir=str(run.path),
                config=wandb_config(config, run_id, labels),
                mode=self.mode,  # type: ignore[arg-type]  # one of wandb's modes, checked by the config
                reinit="finish_previous",
            )
        except Exception as err:  # noqa: BLE001 - W&B must never fail a run
            _warn("init", err)

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.run.append_metrics(metrics)  # a whole line or none, and only while this process holds the run
        if self.wandb_run is not None:
            try:
                self.wandb_run.log(metrics, step=metrics["epoch"])
            except Exception as err:  # noqa: BLE001
                _warn("log", err)
                self.wandb_run = None

    def finish(self, result: dict[str, Any] | None, failed: bool = False, preempted: bool = False) -> None:
        if self.wandb_run is None:
            return
        try:
            if result:
                self.wandb_run.summary.update({k: v for k, v in result.items() if v is not None})
            if preempted:
                self.wandb_run.mark_preempting()
            self.wandb_run.finish(exit_code=1 if failed else 0)
        except Exception as err:  # noqa: BLE001
            _warn("finish", err)
        self.wandb_run = None
