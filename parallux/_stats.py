"""What a benchmark's executions say, measure by measure (SPEC 16): the descriptive statistics a
performance engineer reads before trusting a number.

Plain Python on a list of floats, no third-party import: the config thread computes ``Result.stats`` when a
benchmark ends and must not pay for numpy or scipy at start-up. The significance test of ``compare`` is
scipy's, imported only by the views.

- The 95% confidence interval of the median is distribution-free: two order statistics chosen from the
  binomial distribution Bin(n, 1/2), as in Conover's *Practical Nonparametric Statistics* (3.2). Below six
  values no pair of order statistics reaches 95%: the interval is then ``[min, max]`` and ``ci_level`` says
  how much it covers (93.75% at n = 5).
- Outliers by the modified z-score of Iglewicz and Hoaglin, ``0.6745 (x - median) / MAD`` above 3.5 in
  absolute value, as hyperfine flags them. When more than half of the values are equal the MAD is 0; the
  mean absolute deviation (times 1.253314, its ratio to the MAD under a normal law) stands in for it then.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Sequence

CONFIDENCE = 0.95
OUTLIER_Z = 3.5
Z_PER_MAD = 0.6745        # the MAD of a normal law is 0.6745 standard deviations
MEAN_AD_TO_MAD = 1.253314  # E|x - mean| = 0.7979 sigma; 0.7979 * 1.253314 = 1 sigma, scaled like the MAD


@dataclass(frozen=True)
class Stats:
    """One measure of one benchmark. ``stdev`` and ``cv`` are ``None`` below two values (no spread to
    estimate); ``cv`` also when the mean is 0. ``outliers`` are positions in the values given."""

    n: int
    min: float
    max: float
    mean: float
    median: float
    stdev: float | None
    cv: float | None
    mad: float
    ci_low: float
    ci_high: float
    ci_level: float
    outliers: tuple[int, ...]

    def as_dict(self) -> dict[str, object]:
        # (not dataclasses.asdict: it deep-copies every value, and a show of 10,000 benchmarks x 4 measures
        # spent a second in it)
        named = {field.name: getattr(self, field.name) for field in _FIELDS}
        named["outliers"] = list(self.outliers)
        return named

    @property
    def ci_half_width(self) -> float:
        """Half the interval's width, relative to the median (0.05: the median is known to +-5%)."""
        if self.median == 0:
            return 0.0 if self.ci_low == self.ci_high else math.inf
        return (self.ci_high - self.ci_low) / 2 / abs(self.median)



_FIELDS = fields(Stats)

def summarize(values: Sequence[float]) -> Stats:
    """The statistics of ``values`` (at least one, all finite)."""
    if not values:
        raise ValueError("no values to summarize")
    data = [float(value) for value in values]
    ordered = sorted(data)
    n = len(ordered)
    mean = math.fsum(ordered) / n
    center = median_of(ordered)
    mad = median_of(sorted(abs(value - center) for value in ordered))
    stdev = math.sqrt(math.fsum((value - mean) ** 2 for value in ordered) / (n - 1)) if n > 1 else None
    low, high, level = median_interval(ordered)
    return Stats(n=n, min=ordered[0], max=ordered[-1], mean=mean, median=center, stdev=stdev,
                 cv=stdev / abs(mean) if stdev is not None and mean != 0 else None, mad=mad,
                 ci_low=low, ci_high=high, ci_level=level, outliers=outliers_of(data, center, mad))


def median_of(ordered: Sequence[float]) -> float:
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def binomial_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Bin(n, 1/2)."""
    return math.fsum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def median_interval(ordered: Sequence[float]) -> tuple[float, float, float]:
    """``(low, high, coverage)``: the narrowest symmetric pair of order statistics ``x(r), x(n+1-r)``
    whose coverage ``1 - 2 P(X <= r-1)`` is at least 95%; ``[min, max]`` and its coverage if none is."""
    n = len(ordered)
    rank, coverage = median_ranks(n)
    if rank == 0:
        return ordered[0], ordered[-1], coverage
    return ordered[rank - 1], ordered[n - rank], coverage


@functools.lru_cache(maxsize=256)
def median_ranks(n: int) -> tuple[int, float]:
    """The rank r of the interval's lower bound for n values (0: none reaches 95%) and its coverage. It
    depends on n alone: cached, as the views summarize 10,000 benchmarks of the same n."""
    rank = 0  # 1-based rank r of the lower bound; 0: none reaches the confidence asked for
    while rank + 1 <= n // 2 and 1 - 2 * binomial_cdf(rank, n) >= CONFIDENCE:
        rank += 1
    if rank == 0:
        return 0, 1 - 2 * binomial_cdf(0, n) if n > 1 else 0.0
    return rank, 1 - 2 * binomial_cdf(rank - 1, n)


def outliers_of(values: Sequence[float], center: float, mad: float) -> tuple[int, ...]:
    """Positions whose modified z-score exceeds 3.5 (none when every value is the same)."""
    spread = mad
    if spread == 0:
        spread = math.fsum(abs(value - center) for value in values) / len(values) * MEAN_AD_TO_MAD * Z_PER_MAD
    if spread == 0:
        return ()
    return tuple(index for index, value in enumerate(values)
                 if abs(Z_PER_MAD * (value - center) / spread) > OUTLIER_Z)
