"""The verdicts of ``compare`` (parallux/_views/significance.py): calibrated on seeded synthetic samples,
and the intervals checked against an independent computation -- never on timings."""

from __future__ import annotations

import numpy
import pytest
from scipy import stats as scipy_stats

from parallux._views.significance import compare_many, compare_samples, geometric_mean_interval, ratio_interval


def noisy(rng: numpy.random.Generator, center: float, n: int = 10, noise: float = 0.05) -> list[float]:
    return list(center * (1 + rng.normal(0.0, noise, size=n)))


def test_compare_samples_calls_few_aa_comparisons_a_change() -> None:
    """Two samples of the same machine, n = 10, 5% noise: at most 6% of 500 are called slower or faster."""
    rng = numpy.random.default_rng(20261206)
    verdicts = [compare_samples(noisy(rng, 1.0), noisy(rng, 1.0)).verdict for _ in range(500)]
    assert verdicts.count("slower") + verdicts.count("faster") <= 0.06 * 500
    assert set(verdicts) <= {"same", "slower", "faster"}


@pytest.mark.parametrize("shift, expected", [(1.10, "slower"), (1 / 1.10, "faster")])
def test_compare_samples_finds_a_true_ten_percent_shift(shift: float, expected: str) -> None:
    rng = numpy.random.default_rng(1234)
    verdicts = [compare_samples(noisy(rng, 1.0), noisy(rng, shift)).verdict for _ in range(500)]
    assert verdicts.count(expected) >= 0.95 * 500


def test_compare_samples_for_a_metric_where_higher_is_better() -> None:
    rng = numpy.random.default_rng(5)
    a, b = noisy(rng, 100.0), noisy(rng, 120.0)
    assert compare_samples(a, b, higher_is_better=True).verdict == "faster"
    assert compare_samples(a, b).verdict == "slower"


def test_compare_samples_too_few_below_three_and_same_within_the_threshold() -> None:
    assert compare_samples([1.0, 1.1], [2.0, 2.1, 2.2]).verdict == "too few"
    assert compare_samples([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]).verdict == "same"
    # a real but tiny change: every B is 1% above every A, p < 0.05, yet within the 2% threshold
    a = [1.0 + i * 1e-4 for i in range(10)]
    b = [x * 1.01 for x in a]
    result = compare_samples(a, b)
    assert result.p_value is not None and result.p_value < 0.05 and result.verdict == "same"
    assert compare_samples(a, b, threshold=0.005).verdict == "slower"


def test_compare_samples_with_a_value_of_zero_gives_the_test_without_an_interval() -> None:
    """A metric may be 0 in one execution (0 cache misses) while its median is not: no ratio interval
    (no logarithm of 0), but the test and the verdict still."""
    result = compare_samples([0.0, 10.0, 10.1, 10.2, 9.9], [20.0, 20.1, 20.2, 19.9, 20.3])
    assert result.ratio_low is None and result.ratio_high is None
    assert result.ratio is not None and result.p_value is not None and result.p_value < 0.05
    assert result.verdict == "slower"


def test_compare_many_gives_what_compare_samples_gives_pair_by_pair() -> None:
    """compare's 10,000 benchmarks go through compare_many (one scipy call per shape of pairs, not one per
    pair): the same comparisons, whatever the sizes, ties (which make small samples' test asymptotic),
    values of 0, too few values."""
    rng = numpy.random.default_rng(7)
    pairs = []
    for index in range(300):
        m, n = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        a, b = noisy(rng, 1.0, m), noisy(rng, [1.0, 1.1, 0.9][index % 3], n)
        if index % 7 == 0:
            b = [round(x, 1) for x in b]  # ties
            a = [round(x, 1) for x in a]
        if index % 11 == 0 and m > 1:
            a[0] = 0.0
        pairs.append((a, b))
    pairs.append(([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]))
    for threshold, higher in ((0.02, False), (0.05, True)):
        many = compare_many(pairs, threshold, higher)
        assert len(many) == len(pairs)
        for (a, b), found in zip(pairs, many):
            one = compare_samples(a, b, threshold, higher)
            assert found.verdict == one.verdict and (found.n_a, found.n_b) == (one.n_a, one.n_b)
            for field in ("median_a", "median_b", "ratio", "ratio_low", "ratio_high", "p_value"):
                expected = getattr(one, field)
                assert getattr(found, field) == (None if expected is None else pytest.approx(expected, rel=1e-9))


def u_law(m: int, n: int) -> numpy.ndarray:
    """The exact null distribution of the Mann-Whitney U for sizes m and n: the coefficients of the Gaussian
    binomial [m+n choose m]_q, by G(i, j) = G(i-1, j) + q^i G(i, j-1)."""
    table = {(i, j): numpy.eye(1, m * n + 1, 0)[0] for i in range(m + 1) for j in range(n + 1) if i == 0 or j == 0}
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            table[(i, j)] = table[(i - 1, j)] + numpy.roll(table[(i, j - 1)], i)
    return table[(m, n)] / table[(m, n)].sum()


def exact_moses_positions(m: int, n: int) -> tuple[int, int]:
    """0-based positions, among the m*n sorted differences, of the exact 95% Moses bounds."""
    k = int(numpy.sum(numpy.cumsum(u_law(m, n)) <= 0.025))  # the largest k with P(U <= k-1) <= 0.025
    return k, m * n - 1 - k


def test_u_law_is_the_permutation_law() -> None:
    """The exact law used below, itself checked by brute force at a small size."""
    from itertools import combinations
    m, n = 3, 4
    counts = numpy.zeros(m * n + 1)
    for chosen in combinations(range(m + n), m):  # ranks of the first sample
        counts[sum(chosen) - m * (m - 1) // 2] += 1
    assert numpy.allclose(u_law(m, n), counts / counts.sum())


@pytest.mark.parametrize("n", [5, 10, 20])
def test_ratio_interval_is_the_moses_interval_within_one_order_statistic(n: int) -> None:
    rng = numpy.random.default_rng(n)
    exact_low, exact_high = exact_moses_positions(n, n)
    for _ in range(20):
        a, b = noisy(rng, 1.0, n), noisy(rng, 1.05, n)
        differences = numpy.sort(numpy.subtract.outer(numpy.log(b), numpy.log(a)).ravel())
        low, high = ratio_interval(a, b)
        position_low = int(numpy.argmin(numpy.abs(differences - numpy.log(low))))
        position_high = int(numpy.argmin(numpy.abs(differences - numpy.log(high))))
        # the normal approximation of the critical value may move each bound by one order statistic
        assert abs(position_low - exact_low) <= 1 and abs(position_high - exact_high) <= 1


def test_geometric_mean_interval_matches_scipy() -> None:
    rng = numpy.random.default_rng(3)
    ratios = list(numpy.exp(rng.normal(0.02, 0.05, size=22)))
    center, low, high = geometric_mean_interval(ratios)
    logs = numpy.log(ratios)
    expected_low, expected_high = scipy_stats.t.interval(0.95, len(logs) - 1, loc=logs.mean(),
                                                         scale=scipy_stats.sem(logs))
    assert center == pytest.approx(scipy_stats.gmean(ratios), rel=1e-12)
    assert low == pytest.approx(numpy.exp(expected_low), rel=1e-12)
    assert high == pytest.approx(numpy.exp(expected_high), rel=1e-12)
    assert geometric_mean_interval([1.1]) == (pytest.approx(1.1), None, None)
