"""Where a run's numbers go: metrics.jsonl (always) and Weights & Biases (when enabled).

W&B runs offline on machines without internet (`WANDB_MODE=offline`: files under the run
directory, `wandb sync` later) and is off for a single `gpsbench train` unless asked for, so a plain
run never blocks on a login. W&B is a mirror of metrics.jsonl: when it fails (no API key, no network,
a full disk), the run goes on with a warning and the local files stay complete.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

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


class Tracker:
    def __init__(self, run: RunDir, config, run_id: str, tags: Sequence[str] = (), enabled: bool = True):
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
                group=config.wandb_group,
                job_type=config.method,
                tags=[str(tag)[:64] for tag in tags],  # W&B's limit on a tag's length
                name=f"{config.method}-{config.aug}-{config.dataset}-s{config.seed}-{run_id}",
                id=run_id,
                resume="allow",
                dir=str(run.path),
                config={**config.to_dict(), **config.resolved(), "run_id": run_id},
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
