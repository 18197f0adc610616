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
from urllib.parse import urlsplit

from benchmark.config import RunConfig
from benchmark.data.identity import content_fingerprint
from benchmark.rundir import RunDir


def wandb_mode(configured: str | None) -> str:
    return configured or os.environ.get("WANDB_MODE") or "disabled"


PUBLIC_HOST = "https://api.wandb.ai"


def wandb_settings(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """W&B's settings files as wandb reads them: the global one ($WANDB_CONFIG_DIR/settings, else
    ~/.config/wandb/settings, where `wandb login --host` records the host), then ./wandb/settings over it."""
    import configparser

    config_dir = Path(env.get("WANDB_CONFIG_DIR") or "~/.config/wandb").expanduser()
    values: dict[str, str] = {}
    for path in (config_dir / "settings", Path(env.get("WANDB_DIR") or ".") / "wandb" / "settings"):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue  # wandb ignores an unreadable settings file too
        if parser.has_section("default"):
            values.update(parser.items("default"))
    return values


def wandb_host(env: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The W&B server runs log to, and what chose it: WANDB_BASE_URL, else base_url in W&B's settings
    files (a self-hosted server), else the public host."""
    if env.get("WANDB_BASE_URL"):
        return env["WANDB_BASE_URL"].rstrip("/"), "WANDB_BASE_URL"
    base_url = wandb_settings(env).get("base_url")
    if base_url:
        return base_url.rstrip("/"), "base_url in W&B's settings file"
    return PUBLIC_HOST, "W&B's default host"


def netrc_path(env: Mapping[str, str] = os.environ) -> Path:
    """The netrc file wandb reads and `wandb login` writes: $NETRC, else ~/.netrc (~/_netrc on Windows)."""
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    unix = Path("~/.netrc").expanduser()
    windows = Path("~/_netrc").expanduser()
    return windows if not unix.exists() and (windows.exists() or sys.platform == "win32") else unix


def wandb_key_source(env: Mapping[str, str] = os.environ) -> str | None:
    """Where a credential for the configured host is, in wandb's order (None: nowhere): WANDB_API_KEY,
    an identity token file, api_key in the settings files, or the host's netrc entry (any host, as
    `wandb login --host URL` writes it). Read without wandb.login, which would rewrite the settings."""
    if env.get("WANDB_API_KEY"):
        return "WANDB_API_KEY"
    if env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "WANDB_IDENTITY_TOKEN_FILE"
    if wandb_settings(env).get("api_key"):
        return "api_key in W&B's settings file"
    import netrc

    host = urlsplit(wandb_host(env)[0]).netloc
    path = netrc_path(env)
    try:
        entry = netrc.netrc(str(path)).authenticators(host) if host else None
    except (OSError, netrc.NetrcParseError):
        return None
    return f"{path} (machine {host})" if entry and entry[2] else None


def has_wandb_key(env: Mapping[str, str] = os.environ) -> bool:
    """A credential for the W&B server this machine is configured for (not only the public host)."""
    return wandb_key_source(env) is not None


_told: set[str] = set()


def sweep_wandb_mode(configured: str | None, env: Mapping[str, str] = os.environ) -> str:
    """A sweep logs every run: the sweep file's mode, else env WANDB_MODE, else online with an API key
    for the configured host and offline (local files, `wandb sync` later) without one, saying so once."""
    mode = configured or env.get("WANDB_MODE")
    if mode:
        return mode
    if has_wandb_key(env):
        return "online"
    host, chosen_by = wandb_host(env)
    line = (
        f"gpsbench: W&B logs offline (files in each run folder): no API key for {host} ({chosen_by}) in "
        f"WANDB_API_KEY, W&B's settings or {netrc_path(env)}; to log online run `wandb login"
        f"{'' if host == PUBLIC_HOST else ' --host ' + host}`, or set WANDB_MODE (or the sweep's wandb: mode)"
    )
    if line not in _told:
        _told.add(line)
        print(line, file=sys.stderr)
    return "offline"


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


def _prior_label(config: RunConfig, labels: Labels) -> str:
    """The prior as the sweep names it: a `run:method=simclr` axis value is the same for every seed,
    while the config holds each seed's own source run."""
    return str(labels.axes.get("prior", config.prior if config.is_gps else "none"))


def cell_group(config: RunConfig, labels: Labels = SINGLE_RUN) -> str:
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
        identity["data_content"] = content_fingerprint(config.data_path)
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:10]
    prior = _short_prior(_prior_label(config, labels))
    return f"{config.method}-{prior}-{config.aug}-{config.dataset}-{digest}"[-128:]  # W&B's limit


def run_name(config: RunConfig, labels: Labels = SINGLE_RUN) -> str:
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


def wandb_config(config: RunConfig, run_id: str, labels: Labels = SINGLE_RUN) -> dict[str, Any]:
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
    def __init__(self, run: RunDir, config: RunConfig, run_id: str, labels: Labels = SINGLE_RUN, enabled: bool = True):
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
