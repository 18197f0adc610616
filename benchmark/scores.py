"""How a numeric result key reads in a table: accuracies are fractions shown as percentages, the
label-free scores are plain numbers, and each says which way is better (uniformity and alignment: the
lower), so that the bold best of a column is right. A key without an entry is shown as it is, with
no best."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.errors import choice_error


@dataclass(frozen=True)
class Score:
    percent: bool = False  # a fraction in [0, 1], shown x 100
    higher_is_better: bool | None = None  # None: no direction, so no best
    digits: int | None = None  # decimals shown; None: 4 significant digits

    def scaled(self, value: float) -> float:
        return 100 * value if self.percent else value

    def text(self, value: float) -> str:
        value = self.scaled(value)
        return f"{value:.4g}" if self.digits is None else f"{value:.{self.digits}f}"


ACCURACY = Score(percent=True, higher_is_better=True, digits=2)
SCORES = {
    # evaluate.py: kNN and linear-probe accuracies on test and val (the result keys of docs/design.md)
    "knn_acc": ACCURACY,
    "knn200_acc": ACCURACY,
    "linear_acc": ACCURACY,
    "val_knn_acc": ACCURACY,
    "val_linear_acc": ACCURACY,
    "prior_nn_agreement": ACCURACY,  # the share of a prior's k nearest that share the label
    # online.py: solo-learn's online linear classifier, last epoch on test and on val, and the
    # references' reading, chosen on test (for comparison with published numbers only)
    "online_linear_acc": ACCURACY,
    "val_online_linear_acc": ACCURACY,
    "online_linear_acc_test_selected": ACCURACY,
    # quality.py: RankMe is an effective rank (higher: less collapse); alignment is the mean squared
    # distance of two views of an image, uniformity the log mean Gaussian potential of pairs (Wang and
    # Isola 2020: both lower is better)
    "rankme": Score(higher_is_better=True, digits=2),
    "alignment": Score(higher_is_better=False, digits=3),
    "uniformity": Score(higher_is_better=False, digits=3),
    "train_seconds": Score(higher_is_better=False, digits=1),
    "eval_seconds": Score(higher_is_better=False, digits=1),
    "images_per_s": Score(higher_is_better=True, digits=0),
}
NOT_METRICS = {"seed", "attempt"}  # numbers that name a run, not measure it


def score(metric: str) -> Score:
    return SCORES.get(metric, Score())


def metric_choices(frame: pd.DataFrame) -> list[str]:
    """The numeric result keys of the collected runs: what `--metric` accepts."""
    keys = frame.attrs.get("result_keys") or list(frame.columns)
    return sorted(
        key
        for key in keys
        if key in frame
        and key not in NOT_METRICS
        and pd.api.types.is_numeric_dtype(frame[key])
        and not pd.api.types.is_bool_dtype(frame[key])
        and frame[key].notna().any()
    )


def check_metric(frame: pd.DataFrame, metric: str) -> Score:
    """The metric's Score, or an error naming the bad metric and every numeric result key."""
    choices = metric_choices(frame)
    if metric not in choices:
        raise choice_error("metric", metric, choices or SCORES)
    return score(metric)
