"""A finished run's result: the typed object behind result.json, which owns its keys and their order.

result.json is flat (docs/design.md, Contracts): the keys of `rundir.RESULT_KEYS` and the ones beside
them (`k`, `sampling`, the evaluation's quality figures, the sampler's `gps_*` report, what the run
cost and where it ran). Tables, tuning and W&B read that dict; `as_dict` is the one place it is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class RunResult:
    # what the run is (its config's identity as tables group it)
    run_id: str
    method: str
    aug: str
    dataset: str
    prior: str
    seed: int
    epochs: int
    k: int
    # what it found: evaluate_backbone's metrics (knn_acc, knn200_acc, val_knn_acc, linear_acc,
    # val_linear_acc, probe_l2, and the label-free quality of the val features)
    scores: Mapping[str, Any]
    prior_nn_agreement: float | None  # share of the prior's k nearest with the anchor's label; None: plain SSL
    sampling: str | None  # the sampling rule of a GPS run, None for plain SSL
    gps: Mapping[str, Any]  # the sampler's report (GPSSetup.report), written as gps_<key>; its prior is `prior`
    # what it cost and where it ran
    train_seconds: float
    images_per_s: float | None
    eval_seconds: float
    backbone: str  # the resolved backbone (timm name for a non-default size or pretrained weights)
    num_train: int  # images pretraining saw
    device: str
    world_size: int
    # solo-learn's online linear classifier's readings (benchmark/online.py), with `online_linear`
    online: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """result.json's flat dict, in the order the file has always listed its keys."""
        return {
            "run_id": self.run_id,
            "method": self.method,
            "aug": self.aug,
            "dataset": self.dataset,
            "prior": self.prior,
            "seed": self.seed,
            "epochs": self.epochs,
            "k": self.k,
            **self.scores,
            **self.online,
            "prior_nn_agreement": self.prior_nn_agreement,
            "sampling": self.sampling,
            **{f"gps_{key}": value for key, value in self.gps.items() if key != "prior"},
            "train_seconds": self.train_seconds,
            "images_per_s": self.images_per_s,
            "eval_seconds": self.eval_seconds,
            "backbone": self.backbone,
            "num_train": self.num_train,
            "device": self.device,
            "world_size": self.world_size,
        }
