"""Is a difference between two runs real? The statistics behind ``parallux compare`` (SPEC 16), for two
samples of one measure (the executions of one benchmark in run A and in run B).

- The ratio is ``median(B) / median(A)``. Its 95% interval is the Moses (Hodges-Lehmann) interval of the
  shift between the logarithms: the k-th smallest and largest of the m*n differences ``log b - log a``, k
  from the null distribution of the Mann-Whitney U statistic (its normal approximation). It is
  distribution-free and agrees with the test: it leaves out 1 about when p < 0.05.
- The p-value is the two-sided Mann-Whitney U test, from scipy (exact for small samples without ties):
  a well-kept implementation, not a hand-written one. scipy is imported here only, by ``compare``.
- The verdict: ``slower`` or ``faster`` when p < 0.05 AND the ratio is beyond the threshold (a real but
  negligible change is ``same``); ``too few`` below three executions on a side, where no test can tell.
- The geometric mean of many benchmarks' ratios comes with a t-interval on the logarithms.

``compare_many`` gives the same for many pairs at once: one scipy call per shape of pairs (sizes, ties), the
intervals with numpy, because a call per pair costs about a millisecond in scipy's argument handling alone,
10 s for the 10,000 benchmarks a campaign may have.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist, median
from typing import Any, Sequence

ALPHA = 0.05
MIN_SAMPLES = 3
DEFAULT_THRESHOLD = 0.02


@dataclass(frozen=True)
class Comparison:
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float | None
    ratio_low: float | None
    ratio_high: float | None
    p_value: float | None
    verdict: str  # slower, faster, same, too few


def compare_samples(a: Sequence[float], b: Sequence[float], threshold: float = DEFAULT_THRESHOLD,
                    higher_is_better: bool = False) -> Comparison:
    """B against A. ``higher_is_better`` for a metric such as GFLOP/s, where a higher B is ``faster``."""
    if not testable(a, b):
        return _too_few(a, b)
    # (a value of 0 or below, in a sample whose median is positive: no logarithm, so no interval; the test stands)
    low, high = ratio_interval(a, b) if min(a) > 0 and min(b) > 0 else (None, None)
    return _comparison(a, b, low, high, mann_whitney_p(a, b), threshold, higher_is_better)


def testable(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) >= MIN_SAMPLES and len(b) >= MIN_SAMPLES and median(a) > 0 and median(b) > 0


def _too_few(a: Sequence[float], b: Sequence[float]) -> Comparison:
    median_a, median_b = median(a), median(b)
    ratio = median_b / median_a if median_a > 0 and median_b > 0 else None
    return Comparison(len(a), len(b), median_a, median_b, ratio, None, None, None, "too few")


def _comparison(a: Sequence[float], b: Sequence[float], low: float | None, high: float | None, p_value: float,
                threshold: float, higher_is_better: bool) -> Comparison:
    median_a, median_b = median(a), median(b)
    ratio = median_b / median_a
    return Comparison(len(a), len(b), median_a, median_b, ratio, low, high, p_value,
                      verdict_of(ratio, p_value, threshold, higher_is_better))


def compare_many(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], threshold: float = DEFAULT_THRESHOLD,
                 higher_is_better: bool = False) -> list[Comparison]:
    """``compare_samples`` of each pair (A, B), computed a shape of pairs at a time."""
    import numpy
    from scipy.stats import mannwhitneyu
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for index, (a, b) in enumerate(pairs):
        if testable(a, b):
            # scipy's choice between the exact and the asymptotic test looks at ties over the whole batch
            shape = (len(a), len(b), len(set(a) | set(b)) < len(a) + len(b))
            groups.setdefault(shape, []).append(index)
    found: dict[int, Comparison] = {}
    for indices in groups.values():
        xs = numpy.array([pairs[i][0] for i in indices], dtype=float)
        ys = numpy.array([pairs[i][1] for i in indices], dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_values = numpy.nan_to_num(mannwhitneyu(ys, xs, alternative="two-sided", axis=1).pvalue, nan=1.0)
        lows, highs = _ratio_intervals(numpy, xs, ys)
        for row, index in enumerate(indices):
            a, b = pairs[index]
            low, high = (float(lows[row]), float(highs[row])) if min(a) > 0 and min(b) > 0 else (None, None)
            found[index] = _comparison(a, b, low, high, float(p_values[row]), threshold, higher_is_better)
    return [found[i] if i in found else _too_few(*pair) for i, pair in enumerate(pairs)]


def _ratio_intervals(numpy: Any, xs: Any, ys: Any) -> tuple[Any, Any]:
    """``ratio_interval`` of each row of xs and ys (all of one shape); rows with a value <= 0 give nonsense,
    which the caller leaves out."""
    m, n = xs.shape[1], ys.shape[1]
    with numpy.errstate(all="ignore"):
        logs_x, logs_y = numpy.log(xs), numpy.log(ys)
    differences = numpy.sort((logs_y[:, None, :] - logs_x[:, :, None]).reshape(len(xs), m * n), axis=1)
    k = _moses_k(m, n)
    return numpy.exp(differences[:, k]), numpy.exp(differences[:, -1 - k])


def warm_up() -> None:
    """Import what the tests need now (scipy.stats: most of a second), while other processes read the runs."""
    import scipy.stats  # noqa: F401


def verdict_of(ratio: float, p_value: float, threshold: float, higher_is_better: bool) -> str:
    if p_value >= ALPHA or abs(ratio - 1) <= threshold:
        return "same"
    grew = ratio > 1
    return "faster" if grew == higher_is_better else "slower"


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import mannwhitneyu
    with warnings.catch_warnings():  # all values tied: scipy may warn of a zero variance; p is 1 then
        warnings.simplefilter("ignore")
        p_value = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
    return p_value if math.isfinite(p_value) else 1.0


def ratio_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The Moses 95% interval of the shift of log B against log A, as a ratio."""
    if min(a) <= 0 or min(b) <= 0:
        raise ValueError("a ratio interval needs positive values")
    differences = sorted(math.log(y) - math.log(x) for x in a for y in b)
    k = _moses_k(len(a), len(b))
    return math.exp(differences[k]), math.exp(differences[-1 - k])


def _moses_k(m: int, n: int) -> int:
    """The number of smallest (and largest) of the m*n differences left out on each side."""
    z = NormalDist().inv_cdf(1 - ALPHA / 2)
    k = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))
    return min(max(k, 0), (m * n - 1) // 2)


def geometric_mean_interval(ratios: Sequence[float]) -> tuple[float, float | None, float | None]:
    """The geometric mean of positive ratios and its 95% t-interval (no interval below two ratios)."""
    logs = [math.log(ratio) for ratio in ratios]
    center = math.fsum(logs) / len(logs)
    if len(logs) < 2:
        return math.exp(center), None, None
    from scipy.stats import t
    spread = math.sqrt(math.fsum((x - center) ** 2 for x in logs) / (len(logs) - 1) / len(logs))
    half = float(t.ppf(1 - ALPHA / 2, len(logs) - 1)) * spread
    return math.exp(center), math.exp(center - half), math.exp(center + half)
