"""Where a run's numbers go: metrics.jsonl (always) and Weights & Biases (when enabled).

W&B runs offline on machines without internet (`WANDB_MODE=offline`: files under the run
directory, `wandb sync` later) and is off unless asked for, so a plain run never blocks on a login.
"""

from __future__ import annotations

import json
import os
from typing import Any

from benchmark.rundir import RunDir


def wandb_mode(configured: str | None) -> str:
    return configured or os.environ.get("WANDB_MODE") or "disabled"


class Tracker:
    def __init__(self, run: RunDir, config, run_id: str):
        self.run = run
        self.mode = wandb_mode(config.wandb_mode)
        self.wandb_run = None
        if self.mode != "disabled":
            import wandb

            self.wandb_run = wandb.init(
                project=config.wandb_project,
                entity=config.wandb_entity,
                group=config.wandb_group,
                name=f"{config.method}-{config.aug}-{config.dataset}-s{config.seed}-{run_id}",
                id=run_id,
                resume="allow",
                dir=str(run.path),
                config={**config.to_dict(), "run_id": run_id},
                mode=self.mode,
                reinit="finish_previous",
            )

    def log_epoch(self, metrics: dict[str, Any]) -> None:
        with open(self.run.metrics, "a") as handle:
            handle.write(json.dumps(metrics) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=metrics["epoch"])

    def finish(self, result: dict[str, Any] | None, failed: bool = False) -> None:
        if self.wandb_run is None:
            return
        if result:
            self.wandb_run.summary.update({k: v for k, v in result.items() if v is not None})
        self.wandb_run.finish(exit_code=1 if failed else 0)
        self.wandb_run = None
