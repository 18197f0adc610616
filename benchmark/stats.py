"""Statistics of a few seeds: intervals of a mean, the seeds a comparison needs, and aggregates over
cells with stratified bootstrap intervals (interquartile mean, probability of improvement,
performance profiles; Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS
2021). Numbers in, numbers out: which runs are paired or pooled is benchmark/compare.py's business.

The heavy lifting is scipy's: `stats.t` and `stats.nct` for intervals and power, `stats.trim_mean`
for the interquartile mean, `stats.mannwhitneyu` for the probability of improvement, `stats.bootstrap`
for the stratified bootstrap (each stratum is one of its independent samples)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95  # intervals are 95% unless asked otherwise
POWER, ALPHA = 0.8, 0.05  # the seeds needed: power 0.8 at a two-sided 5% test
RESAMPLES = 2000  # bootstrap resamples of an aggregate
MAX_SEEDS = 1000  # the search for the seeds needed stops here ("more than 1000")


def t_half_width(std, n, level: float = LEVEL):
    """Half the width of the t interval of a mean from its sample std (ddof 1) and n: t_{(1+level)/2,
    n-1} std / sqrt(n); NaN below two values. Works on numbers and arrays alike."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantile = stats.t.ppf((1 + level) / 2, np.where(n >= 2, n - 1, np.nan))
        return quantile * np.asarray(std, dtype=float) / np.sqrt(n)


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): the t interval of the mean of `values` (scipy's one-sample t test); with
    paired differences as `values`, the paired t interval. NaN bounds below two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return (float(x.mean()) if len(x) else math.nan), math.nan, math.nan
    if np.ptp(x) == 0:  # no spread: scipy's test is undefined, the interval is the point
        return float(x[0]), float(x[0]), float(x[0])
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(level)
    return float(x.mean()), float(ci.low), float(ci.high)


def excludes_zero(low: float, high: float) -> bool:
    return bool(low > 0 or high < 0)


# ----------------------------------------------------------------------------- seeds needed
def t_power(difference: float, std: float, n: int, paired: bool, alpha: float = ALPHA) -> float:
    """Power of a two-sided t test at level alpha to detect a true `difference` with n seeds: paired
    (one-sample t on n per-seed differences of standard deviation `std`) or two groups of n seeds
    each with a common `std` (Student's two-sample t). From the noncentral t distribution."""
    if paired:
        df, noncentrality = n - 1, difference / (std / math.sqrt(n))
    else:
        df, noncentrality = 2 * n - 2, difference / (std * math.sqrt(2 / n))
    critical = stats.t.ppf(1 - alpha / 2, df)
    upper = stats.nct.sf(critical, df, noncentrality)
    lower = stats.nct.cdf(-critical, df, noncentrality)
    # far in a tail scipy's noncentral t gives NaN: there the wrong-side tail is 0, and the other is
    # the normal's (the noncentral t is nearly normal about a large noncentrality)
    if math.isnan(upper):
        upper = stats.norm.sf(critical - noncentrality)
    return float(upper + (0.0 if math.isnan(lower) else lower))


def seeds_needed(std: float, difference: float, paired: bool, power: float = POWER, alpha: float = ALPHA) -> int | None:
    """The fewest seeds (per group, for two groups) at which a two-sided t test detects a true
    `difference` with `power`, given the observed per-seed `std`; None without a std (one seed),
    MAX_SEEDS + 1 beyond the search."""
    if std is None or not math.isfinite(std) or difference <= 0:
        return None
    if std == 0:
        return 2

    def enough(n: int) -> bool:
        return t_power(difference, std, n, paired, alpha) >= power

    # start from the normal approximation, then step: power grows with n, and near the answer the
    # noncentral t is well inside the range where scipy evaluates it
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = min(MAX_SEEDS + 1, max(2, math.ceil((z * std / difference) ** 2 * (1 if paired else 2))))
    while n <= MAX_SEEDS and not enough(n):
        n += 1
    while n > 2 and enough(n - 1):
        n -= 1
    return n


# ----------------------------------------------------------------------------- aggregates
def iqm(tasks: Sequence[Sequence[float]]) -> float:
    """The interquartile mean of every run of every task: the mean of the middle 50% of the scores
    (25% cut at each end)."""
    return float(stats.trim_mean(np.concatenate([np.ravel(task) for task in tasks]), 0.25))


def probability_of_improvement(x_tasks: Sequence[Sequence[float]], y_tasks: Sequence[Sequence[float]]) -> float:
    """P(X > Y): per task, the chance that a run of X scores above a run of Y (ties count half: the
    Mann-Whitney U of X over Y divided by n_x n_y), averaged over tasks."""
    return float(
        np.mean([_u_share(np.asarray(x, float), np.asarray(y, float)) for x, y in zip(x_tasks, y_tasks, strict=True)])
    )


def _u_share(x: np.ndarray, y: np.ndarray, axis: int = -1):
    u = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic", axis=axis).statistic
    return u / (x.shape[axis] * y.shape[axis])


def profile_taus(scores: Sequence[Sequence[float]], points: int = 101) -> np.ndarray:
    """Thresholds spanning the scores, for a performance profile."""
    flat = np.concatenate([np.ravel(task) for task in scores])
    return np.linspace(flat.min(), flat.max(), points)


def score_profile(tasks: Sequence[Sequence[float]], taus: np.ndarray) -> np.ndarray:
    """A performance profile: for each threshold tau, the fraction of runs scoring above tau, per
    task, averaged over tasks (so a task with more seeds weighs as much as one with fewer)."""
    return np.mean([(np.asarray(task, float)[:, None] > taus[None, :]).mean(axis=0) for task in tasks], axis=0)


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval."""

    value: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        return bool(self.low > value or self.high < value)


def stratified_bootstrap(
    statistic: Callable[..., np.ndarray],
    strata: Sequence[Sequence[float]],
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
):
    """`statistic(*strata)` and its percentile interval when every stratum (a task's runs of one
    method) is resampled with replacement on its own, as the runs of different tasks are not
    exchangeable. A stratum of one run stays as it is (resampling it changes nothing). `statistic`
    takes the strata with any leading batch axes (resamples) and reduces their last axis. Returns
    (value, low, high), each an array when `statistic` returns several numbers."""
    arrays = [np.asarray(s, dtype=float) for s in strata]
    value = np.asarray(statistic(*arrays))
    varied = [i for i, a in enumerate(arrays) if len(a) > 1]
    if not varied:
        return value, value.copy(), value.copy()

    def resampled(*samples, axis=-1):
        full = list(arrays)
        batch = samples[0].shape[:-1]
        for i, sample in zip(varied, samples):
            full[i] = sample
        for i in set(range(len(arrays))) - set(varied):  # constant strata take the batch's shape
            full[i] = np.broadcast_to(arrays[i], batch + arrays[i].shape)
        return statistic(*full)

    result = stats.bootstrap(
        tuple(arrays[i] for i in varied),
        resampled,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return value, np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def iqm_estimate(tasks: Sequence[Sequence[float]], level: float = LEVEL, seed: int = 0) -> Estimate:
    """The IQM of every run of every task, with its stratified bootstrap interval."""

    def statistic(*strata):
        return stats.trim_mean(np.concatenate(strata, axis=-1), 0.25, axis=-1)

    value, low, high = stratified_bootstrap(statistic, tasks, level, seed=seed)
    return Estimate(float(value), float(low), float(high))


def improvement_estimate(
    x_tasks: Sequence[Sequence[float]], y_tasks: Sequence[Sequence[float]], level: float = LEVEL, seed: int = 0
) -> Estimate:
    """P(X > Y) over tasks, with its stratified bootstrap interval (X's and Y's runs of each task
    resampled independently)."""
    pairs = len(x_tasks)

    def statistic(*strata):
        return np.mean([_u_share(strata[2 * i], strata[2 * i + 1]) for i in range(pairs)], axis=0)

    interleaved = [s for pair in zip(x_tasks, y_tasks, strict=True) for s in pair]
    value, low, high = stratified_bootstrap(statistic, interleaved, level, seed=seed)
    return Estimate(float(value), float(low), float(high))


def profile_estimate(tasks: Sequence[Sequence[float]], taus: np.ndarray, level: float = LEVEL, seed: int = 0):
    """The performance profile at `taus` and its pointwise stratified bootstrap band: (value, low, high)."""

    def statistic(*strata):
        return np.mean([(s[..., :, None] > taus).mean(axis=-2) for s in strata], axis=0)

    value, low, high = stratified_bootstrap(lambda *s: _last_axis_taus(statistic, *s), tasks, level, seed=seed)
    return value, low, high


def _last_axis_taus(statistic, *strata):
    """scipy's bootstrap reduces the last axis; a profile's thresholds go first so that it does."""
    return np.moveaxis(statistic(*strata), -1, 0)
