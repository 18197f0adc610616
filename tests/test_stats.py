"""The statistics of benchmark/stats.py against small cases worked out independently: intervals by
hand (a t quantile from a printed table), power against simulated t tests and published sample
sizes, the interquartile mean and the probability of improvement by brute force, and the stratified
bootstrap against the exact distribution of every resample of a tiny data set."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmark import stats

T_975_DF2 = 4.302652729749464  # the t distribution's 97.5% quantile at 2 degrees of freedom (printed tables: 4.303)


def test_t_interval_of_three_values_by_hand():
    values = [1.0, 2.0, 4.0]
    mean = 7 / 3
    std = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    half = T_975_DF2 * std / math.sqrt(3)
    found = stats.t_interval(values)
    assert found == pytest.approx((mean, mean - half, mean + half), rel=1e-9)
    assert stats.t_half_width(std, 3) == pytest.approx(half, rel=1e-9)


def test_t_interval_edges_one_value_and_no_spread():
    assert math.isnan(stats.t_interval([0.5])[1])
    assert stats.t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    widths = stats.t_half_width(np.array([1.0, 1.0]), np.array([1, 4]))
    assert math.isnan(widths[0]) and widths[1] == pytest.approx(scipy_stats.t.ppf(0.975, 3) / 2)


def test_seeds_needed_matches_published_sample_sizes():
    # Cohen's d = 1 at a two-sided 5% test and power 0.8: 10 pairs for a paired (one-sample) t test,
    # 17 per group for two groups (G*Power and Cohen's tables)
    assert stats.seeds_needed(std=1.0, difference=1.0, paired=True) == 10
    assert stats.seeds_needed(std=1.0, difference=1.0, paired=False) == 17
    assert stats.seeds_needed(std=2.0, difference=2.0, paired=True) == 10  # only the ratio counts
    assert stats.seeds_needed(std=float("nan"), difference=1.0, paired=True) is None
    assert stats.seeds_needed(std=100.0, difference=0.1, paired=True) == stats.MAX_SEEDS + 1


@pytest.mark.parametrize("paired, n", [(True, 10), (True, 9), (False, 17)])
def test_power_against_simulated_t_tests(paired, n):
    """The power formula against 20,000 simulated experiments with a true difference of 1 std."""
    rng = np.random.default_rng(0)
    trials = 20_000
    if paired:
        differences = rng.normal(1.0, 1.0, (trials, n))
        p = scipy_stats.ttest_1samp(differences, 0.0, axis=1).pvalue
    else:
        a, b = rng.normal(1.0, 1.0, (trials, n)), rng.normal(0.0, 1.0, (trials, n))
        p = scipy_stats.ttest_ind(a, b, axis=1).pvalue
    simulated = (p < 0.05).mean()
    assert stats.t_power(1.0, 1.0, n, paired) == pytest.approx(simulated, abs=0.012)


def test_iqm_is_the_mean_of_the_middle_half():
    tasks = [[8.0, 1.0], [3.0, 6.0], [2.0, 7.0], [5.0, 4.0]]  # 1..8: the middle half is 3, 4, 5, 6
    assert stats.iqm(tasks) == 4.5
    assert stats.iqm_estimate(tasks).value == 4.5


def test_probability_of_improvement_by_brute_force():
    x = [[1.0, 3.0, 5.0], [0.7, 0.9]]
    y = [[2.0, 3.0], [0.8, 0.8, 0.1]]

    def brute(xs, ys):
        wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in xs for b in ys]
        return sum(wins) / len(wins)

    expected = (brute(x[0], y[0]) + brute(x[1], y[1])) / 2  # (3.5 / 6 + 5 / 6) / 2
    assert stats.probability_of_improvement(x, y) == pytest.approx(expected)
    assert stats.improvement_estimate(x, y).value == pytest.approx(expected)


def test_profile_is_the_task_averaged_fraction_above_each_threshold():
    tasks = [[1.0, 2.0, 3.0], [10.0, 20.0]]
    taus = np.array([0.0, 1.5, 2.5, 15.0, 25.0])
    expected = [((1 / 3 * sum(v > t for v in tasks[0])) + 0.5 * sum(v > t for v in tasks[1])) / 2 for t in taus]
    assert stats.score_profile(tasks, taus) == pytest.approx(expected)
    value, low, high = stats.profile_estimate(tasks, taus)
    assert value == pytest.approx(expected) and (low <= value).all() and (value <= high).all()


def test_the_bootstrap_resamples_within_strata_only():
    """Two tasks whose runs agree within each task: every stratified resample is the same data, so the
    interval is a point; resampling the pooled runs would mix the tasks and widen it."""
    estimate = stats.iqm_estimate([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert estimate.low == estimate.value == estimate.high == 0.5


def test_the_bootstrap_interval_matches_the_exact_resampling_distribution():
    """Every one of the 4^4 x 3^3 = 6,912 equally likely stratified resamples of two small tasks,
    enumerated: the bootstrap's percentile bounds must fall where the exact distribution puts its
    2.5% and 97.5% quantiles (between the support points whose cumulative probability brackets them)."""
    a, b = [1.0, 2.0, 4.0, 8.0], [16.0, 32.0, 64.0]
    resamples_a = np.array(list(itertools.product(a, repeat=len(a))))  # (256, 4)
    resamples_b = np.array(list(itertools.product(b, repeat=len(b))))  # (27, 3)
    every = np.concatenate(
        [np.repeat(resamples_a, len(resamples_b), axis=0), np.tile(resamples_b, (len(resamples_a), 1))], axis=1
    )
    values = np.sort(scipy_stats.trim_mean(every, 0.25, axis=1))  # the IQM of each resample, by hand's rule
    cdf = np.arange(1, len(values) + 1) / len(values)

    def support_between(p_low, p_high):
        return values[int(np.searchsorted(cdf, p_low))], values[int(np.searchsorted(cdf, p_high))]

    found = stats.iqm_estimate([a, b])
    low_range, high_range = support_between(0.02, 0.03), support_between(0.97, 0.98)
    assert low_range[0] <= found.low <= low_range[1]
    assert high_range[0] <= found.high <= high_range[1]
    assert found.value == stats.iqm([a, b])


def test_a_task_of_one_run_is_kept_as_it_is():
    estimate = stats.improvement_estimate([[2.0], [1.0, 3.0]], [[1.0], [2.0, 2.0]])
    assert estimate.value == pytest.approx((1.0 + 0.5) / 2)
    assert 0.5 <= estimate.low <= estimate.value <= estimate.high <= 1.0
