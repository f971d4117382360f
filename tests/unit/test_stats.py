"""The statistics of a benchmark's executions (parallux/_stats.py), checked against an independent
computation with numpy and scipy on seeded synthetic data and on textbook values -- never on timings."""

from __future__ import annotations

import math

import numpy
import pytest
from scipy import stats as scipy_stats

from parallux._stats import summarize


def samples(seed: int, n: int) -> list[float]:
    return list(numpy.random.default_rng(seed).lognormal(mean=0.0, sigma=0.2, size=n))


def independent_interval(values: list[float]) -> tuple[float, float, float]:
    """The order statistics x(r), x(n+1-r) with the largest r whose coverage under Bin(n, 1/2) is >= 95%."""
    ordered = numpy.sort(values)
    n = len(ordered)
    best = None
    for rank in range(1, n // 2 + 1):
        coverage = 1 - 2 * scipy_stats.binom.cdf(rank - 1, n, 0.5)
        if coverage >= 0.95:
            best = (float(ordered[rank - 1]), float(ordered[n - rank]), float(coverage))
    return best if best else (float(ordered[0]), float(ordered[-1]), 1 - 2 * 0.5 ** n)


@pytest.mark.parametrize("n", [2, 5, 10, 30, 101])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summarize_every_field_matches_numpy_and_scipy(n: int, seed: int) -> None:
    values = samples(seed, n)
    got = summarize(values)
    array = numpy.array(values)
    assert got.n == n
    assert got.min == array.min() and got.max == array.max()
    assert got.mean == pytest.approx(array.mean(), rel=1e-12)
    assert got.median == pytest.approx(numpy.median(array), rel=1e-12)
    assert got.stdev == pytest.approx(array.std(ddof=1), rel=1e-12)
    assert got.cv == pytest.approx(array.std(ddof=1) / array.mean(), rel=1e-12)
    assert got.mad == pytest.approx(scipy_stats.median_abs_deviation(array), rel=1e-12)
    low, high, level = independent_interval(values)
    assert (got.ci_low, got.ci_high) == (low, high)
    assert got.ci_level == pytest.approx(level, rel=1e-12)


@pytest.mark.parametrize("n, rank", [(6, 1), (10, 2), (20, 6), (30, 10)])
def test_summarize_median_interval_is_the_textbook_pair_of_order_statistics(n: int, rank: int) -> None:
    """Conover's table: n=10 gives x(2)..x(9), n=30 gives x(10)..x(21)."""
    values = [float(i) for i in range(1, n + 1)][::-1]  # given in reverse: the ranks are of the sorted values
    got = summarize(values)
    assert (got.ci_low, got.ci_high) == (rank, n + 1 - rank)
    assert got.ci_level >= 0.95


def test_summarize_below_six_values_the_interval_is_the_range_and_says_its_coverage() -> None:
    got = summarize([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (got.ci_low, got.ci_high) == (1.0, 5.0)
    assert got.ci_level == pytest.approx(0.9375)


def independent_outliers(values: list[float]) -> list[int]:
    array = numpy.array(values)
    center = numpy.median(array)
    mad = numpy.median(numpy.abs(array - center))
    if mad == 0:
        scores = (array - center) / (1.253314 * numpy.mean(numpy.abs(array - center)))
    else:
        scores = 0.6745 * (array - center) / mad
    return [int(i) for i in numpy.flatnonzero(numpy.abs(scores) > 3.5)]


def test_summarize_outliers_by_the_modified_z_score() -> None:
    rng = numpy.random.default_rng(7)
    for trial in range(200):
        values = list(rng.normal(10.0, 0.3, size=int(rng.integers(3, 40))))
        if trial % 3 == 0:  # plant one far value
            values[int(rng.integers(len(values)))] = 10.0 + float(rng.choice([-1, 1])) * float(rng.uniform(1, 6))
        assert list(summarize(values).outliers) == independent_outliers(values), values


def test_summarize_outliers_when_most_values_are_equal() -> None:
    values = [5.0] * 8 + [5.1, 9.0]
    assert list(summarize(values).outliers) == independent_outliers(values) == [9]
    assert summarize([2.0] * 5).outliers == ()


def test_summarize_one_value_has_no_spread_and_none_is_an_error() -> None:
    got = summarize([1.5])
    assert (got.n, got.median, got.stdev, got.cv, got.ci_low, got.ci_high) == (1, 1.5, None, None, 1.5, 1.5)
    assert got.as_dict()["outliers"] == []
    assert math.isclose(summarize([1.0, 1.1, 0.9, 1.0, 1.0, 1.0]).ci_half_width, 0.1)  # n=6: [min, max]
    assert summarize([1.0] * 8 + [0.9, 1.1]).ci_half_width == 0.0  # n=10: x(2)..x(9)
    with pytest.raises(ValueError):
        summarize([])
