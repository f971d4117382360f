"""The report's benchmarks (``benchmarks`` in its data): each benchmark's executions, the value of each
measure and its outliers, drawn by ``benchmarks.js`` as points over a box (SPEC 16)."""

from __future__ import annotations

from typing import Any

from ..._stats import median_of, outliers_of
from ..benchmarks import measures, split
from ..records import Run

BENCH_FIELDS = ("key", "name", "status", "runners", "seqs", "repetitions")


def benchmarks_data(run: Run) -> dict[str, Any]:
    """Columnar, like the commands: a row per benchmark with the seqs and repetitions of its executions that
    ended ok (the values are of these, warm-ups never), then per measure a list of values per benchmark
    (null where an execution has none) and of outliers (positions in that list), by the rule of ``stats``."""
    benchmarks = split(run)[0]
    every = measures(run)
    rows: list[list[Any]] = []
    values: dict[str, list[Any]] = {m: [] for m in every}
    outliers: dict[str, list[Any]] = {m: [] for m in every}
    for benchmark in benchmarks:
        executions = [e for e in benchmark.measured if e.status == "ok"]
        rows.append([benchmark.key, benchmark.name, benchmark.status, ",".join(benchmark.runners),
                     [e.seq for e in executions], [e.repetition for e in executions]])
        for measure in every:
            found, sources = benchmark.samples(measure)
            at = {id(source): value for source, value in zip(sources, found)}
            values[measure].append([at.get(id(e)) for e in executions])
            outliers[measure].append(_outliers(found, sources, executions))
    return {"measures": every, "fields": list(BENCH_FIELDS), "rows": rows, "values": values,
            "outliers": outliers}


def _outliers(found: list[float], sources: list[Any], executions: list[Any]) -> list[int]:
    if not found:
        return []
    center = median_of(sorted(found))
    mad = median_of(sorted(abs(value - center) for value in found))
    position = {id(e): index for index, e in enumerate(executions)}
    return [position[id(sources[i])] for i in outliers_of(found, center, mad)]
